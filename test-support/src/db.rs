//! A fresh database per test, on MariaDB or SQLite, removed afterwards.

use platform::config::DbConfig;
use sea_orm::DatabaseConnection;

use crate::servers::{mysql_url, unique};

/// Which backend a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MariaDb,
    Sqlite,
}

/// A database created for one test.
pub struct TestDb {
    pub backend: Backend,
    pub cfg: DbConfig,
    pub conn: DatabaseConnection,
}

impl TestDb {
    /// A new, empty database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        let url = match backend {
            Backend::MariaDb => format!("{}/{}", mysql_url(), unique("scrm_t")),
            Backend::Sqlite => format!(
                "sqlite://{}",
                std::env::temp_dir()
                    .join(format!("{}.db", unique("scrm_t")))
                    .display()
            ),
        };
        let cfg = DbConfig::new(url);
        let conn = platform::db::connect(&cfg, true)
            .await
            .unwrap_or_else(|e| panic!("test database on {backend:?}: {e}"));
        TestDb { backend, cfg, conn }
    }

    /// A second pool on the same database (another process, as far as the database can tell).
    pub async fn another_connection(&self) -> DatabaseConnection {
        platform::db::connect(&self.cfg, false)
            .await
            .expect("second connection")
    }

    /// Drops the database (or deletes the file).
    pub async fn cleanup(self) {
        let _ = self.conn.close().await;
        let url = self.cfg.url.expose().to_string();
        match self.backend {
            Backend::MariaDb => platform::db::drop_mysql_database(&url)
                .await
                .expect("drop test database"),
            Backend::Sqlite => {
                if let Some(path) = platform::db::sqlite_path(&url) {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{path}{suffix}"));
                    }
                }
            }
        }
    }
}

/// Declares each named `async fn(Backend)` as two tests, `mariadb::<name>` and `sqlite::<name>`:
/// storage tests run on both backends, never on SQLite alone.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::MariaDb).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::Sqlite).await
                }
            )*
        }
    };
}
