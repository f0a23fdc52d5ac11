//! A fresh database per test, on MariaDB or SQLite, removed afterwards; a service's schema is
//! migrated once per test binary and copied into each test's database.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use platform::config::DbConfig;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;

use crate::servers::{mysql_url, unique};

/// Which backend a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// A new database holding what `M::up` leaves in an empty one: `M`'s tables and its
    /// migration records. The migrations run once per test binary and backend; each test's
    /// database is a copy (SQLite: the migrated file's bytes; MariaDB: each table's
    /// `SHOW CREATE TABLE` and the migration records), which is quicker than migrating and
    /// leaves nothing behind — the schema is kept in memory, not in a template database.
    pub async fn migrated<M: MigratorTrait + 'static>(backend: Backend) -> Self {
        let schema = schema::<M>(backend).await;
        match &*schema {
            Schema::Sqlite(bytes) => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("scrm_t")));
                std::fs::write(&path, bytes).expect("write the test database");
                let cfg = DbConfig::new(format!("sqlite://{}", path.display()));
                let conn = platform::db::connect(&cfg, false)
                    .await
                    .unwrap_or_else(|e| panic!("test database on {backend:?}: {e}"));
                TestDb { backend, cfg, conn }
            }
            Schema::MariaDb { tables, migrations } => {
                let t = TestDb::new(backend).await;
                for ddl in tables.iter().chain(migrations) {
                    t.conn
                        .execute_unprepared(ddl)
                        .await
                        .unwrap_or_else(|e| panic!("copy the schema: {e}: {ddl}"));
                }
                t
            }
        }
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

/// A migrated schema, as [`TestDb::migrated`] copies it.
enum Schema {
    Sqlite(Vec<u8>),
    MariaDb {
        /// `CREATE TABLE` of every table.
        tables: Vec<String>,
        /// `INSERT`s of the migration records.
        migrations: Vec<String>,
    },
}

type Schemas = tokio::sync::Mutex<HashMap<(TypeId, Backend), Arc<Schema>>>;

/// `M`'s schema on `backend`, migrated on the first call in this process.
async fn schema<M: MigratorTrait + 'static>(backend: Backend) -> Arc<Schema> {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    let mut schemas = SCHEMAS.get_or_init(Default::default).lock().await;
    if let Some(s) = schemas.get(&(TypeId::of::<M>(), backend)) {
        return s.clone();
    }
    let t = TestDb::new(backend).await;
    M::up(&t.conn, None).await.expect("migrations");
    let schema = match backend {
        Backend::Sqlite => {
            // The write-ahead log folded into the file, so its bytes are the whole database.
            t.conn
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .expect("checkpoint");
            let url = t.cfg.url.expose().to_string();
            let path = platform::db::sqlite_path(&url).expect("SQLite path");
            Schema::Sqlite(std::fs::read(path).expect("read the migrated database"))
        }
        Backend::MariaDb => {
            let rows = |sql: &str| {
                let stmt = Statement::from_string(t.conn.get_database_backend(), sql.to_string());
                let conn = t.conn.clone();
                async move {
                    conn.query_all(stmt)
                        .await
                        .expect("read the migrated schema")
                }
            };
            let mut tables = Vec::new();
            for row in rows("SHOW TABLES").await {
                let name: String = row.try_get_by_index(0).expect("table name");
                let create = rows(&format!("SHOW CREATE TABLE `{name}`")).await;
                tables.push(
                    create[0]
                        .try_get_by_index::<String>(1)
                        .expect("CREATE TABLE"),
                );
            }
            let migrations = rows("SELECT version, applied_at FROM seaql_migrations")
                .await
                .iter()
                .map(|r| {
                    let version: String = r.try_get("", "version").expect("version");
                    let at: i64 = r.try_get("", "applied_at").expect("applied_at");
                    format!(
                        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', {at})"
                    )
                })
                .collect();
            Schema::MariaDb { tables, migrations }
        }
    };
    t.cleanup().await;
    let schema = Arc::new(schema);
    schemas.insert((TypeId::of::<M>(), backend), schema.clone());
    schema
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
