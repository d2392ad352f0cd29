//! A fresh, private database per test, so that tests can run in parallel without sharing
//! state. Used by this crate's conformance tests and by the end-to-end tests of the binary.

use tokio_postgres::NoTls;

/// The server tests use: `BOXOFFICE_TEST_POSTGRES` or the local test service.
pub fn admin_url() -> String {
    std::env::var("BOXOFFICE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test and dropped (with any open connections) when this value
/// is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDatabase {
    /// Creates `boxoffice_test_<random>` on the test server. Panics if the server is not
    /// there: a test that needs PostgreSQL must not silently pass without it.
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("boxoffice_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL for tests is not reachable: {e}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        drop(client);
        let _ = task.await;
        let mut cfg: tokio_postgres::Config = admin.parse().expect("admin url");
        cfg.dbname(&name);
        let url = with_dbname(&admin, &name);
        Self { name, url, admin }
    }
}

fn with_dbname(url: &str, db: &str) -> String {
    // postgres://user@host:port/dbname?params → swap the path segment.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime; a thread of its own works in both.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    let task = tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    drop(client);
                    let _ = task.await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn swaps_database_name() {
        assert_eq!(
            with_dbname("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_dbname("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_dbname("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
