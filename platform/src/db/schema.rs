//! Column and index helpers every service's migrations use, so tables look alike everywhere:
//! portable types only (MySQL / MariaDB / TiDB and SQLite).

use sea_orm_migration::prelude::*;

/// `BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY`.
pub fn id_col<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

/// `VARCHAR(len) NOT NULL`.
pub fn str_col<T: IntoIden>(c: T, len: u32) -> ColumnDef {
    ColumnDef::new(c).string_len(len).not_null().to_owned()
}

/// `VARCHAR(len) NULL`.
pub fn opt_str<T: IntoIden>(c: T, len: u32) -> ColumnDef {
    ColumnDef::new(c).string_len(len).null().to_owned()
}

/// A time this system stamps (`TIMESTAMP NOT NULL` on MySQL).
pub fn ts_col<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A time that comes from outside (`DATETIME NOT NULL`: no 2038 limit).
pub fn dt<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).date_time().not_null().to_owned()
}

/// [`dt`], nullable.
pub fn dt_null<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).date_time().null().to_owned()
}

/// `BOOLEAN NOT NULL`.
pub fn boolean<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).boolean().not_null().to_owned()
}

/// `DOUBLE NOT NULL`.
pub fn double<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).double().not_null().to_owned()
}

/// `BIGINT NOT NULL DEFAULT 0`.
pub fn big<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

/// `TEXT NOT NULL`.
pub fn text<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).text().not_null().to_owned()
}

/// Column names as an index takes them.
pub fn cols<T: IntoIden + Copy>(cs: &[T]) -> Vec<DynIden> {
    cs.iter().map(|c| c.into_iden()).collect()
}

/// Creates an index (if missing) on `cols` of `table`.
pub async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(c);
    }
    if unique {
        i.unique();
    }
    m.create_index(i.to_owned()).await
}
