//! Fresh databases for tests: a SQLite file in a temp dir, or a new PostgreSQL database on
//! the server at `BURNGUARD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped when the handle goes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn postgres_admin_url() -> String {
    std::env::var("BURNGUARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("burnguard.db").display());
        TestDb::Sqlite { _dir: dir, url }
    }

    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!(
            "burnguard_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb::Postgres {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn both() -> [TestDb; 2] {
        [TestDb::sqlite(), TestDb::postgres().await]
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name, .. } = self {
            let name = name.clone();
            // Drop runs outside any runtime we can block on; use a small one of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Rows in `table` (a constant name) of the database at `url`.
pub async fn rows(url: &str, table: &str) -> i64 {
    count(url, &format!("SELECT COUNT(*) AS n FROM {table}")).await
}

/// The number `n` that `sql` (built from constants) answers on the database at `url`.
pub async fn count(url: &str, sql: &str) -> i64 {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    pool.close().await;
    n
}

/// SLOs of the database at `url` whose stored latest state is not their newest history row
/// (the last one written), or that have history but no latest state. Worked out in SQL from
/// the two tables, apart from the store's own reads.
pub async fn stale_latest_states(url: &str) -> i64 {
    count(
        url,
        "SELECT \
           (SELECT COUNT(*) FROM latest_evaluations l WHERE l.evaluation_id <> \
              COALESCE((SELECT MAX(e.id) FROM evaluations e WHERE e.slo = l.slo), -1)) \
         + (SELECT COUNT(DISTINCT e.slo) FROM evaluations e WHERE NOT EXISTS \
              (SELECT 1 FROM latest_evaluations l WHERE l.slo = e.slo)) AS n",
    )
    .await
}
