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

/// A private pgbouncer in `pool_mode = transaction` in front of the test server, on a free
/// port, with fewer server connections than its clients will open, so that consecutive
/// transactions of one client land on different server connections: whatever a store keeps
/// in the session (a prepared statement, a lock, a `LISTEN`) is lost or lands on someone
/// else. Stopped when dropped. Panics when pgbouncer is not installed (`apt-get install
/// pgbouncer`; `scripts/test.sh` does): a test that needs it must not pass without it.
#[derive(Debug)]
pub struct TransactionPooler {
    /// `postgres://…` through the pooler to `database`.
    pub url: String,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl TransactionPooler {
    /// Starts pgbouncer for `database` on the test server, `server_connections` server
    /// connections at most.
    pub fn start(database: &str, server_connections: u32) -> Self {
        let admin: tokio_postgres::Config = admin_url().parse().expect("admin url");
        let host = match admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = admin.get_ports().first().copied().unwrap_or(5432);
        let user = admin.get_user().unwrap_or("postgres").to_owned();
        let listen = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let listen_port = listen.local_addr().expect("addr").port();
        drop(listen);
        let dir = std::env::temp_dir().join(format!("pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let d = dir.display();
        std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n")).expect("userlist");
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n{database} = host={host} port={port} dbname={database} user={user}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen_port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {d}/userlist.txt\n\
                 pool_mode = transaction\nmax_client_conn = 500\n\
                 default_pool_size = {server_connections}\nreserve_pool_size = 0\n\
                 server_reset_query =\nlogfile = {d}/pgbouncer.log\n\
                 ignore_startup_parameters = extra_float_digits\n"
            ),
        )
        .expect("pgbouncer.ini");
        // Debian installs it under /usr/sbin, which a user's PATH may not have.
        let program = if std::path::Path::new("/usr/sbin/pgbouncer").exists() {
            "/usr/sbin/pgbouncer"
        } else {
            "pgbouncer"
        };
        // pgbouncer refuses to run as root.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            let _ = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status();
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            std::process::Command::new(program)
        };
        let child = cmd
            .arg("-q")
            .arg(dir.join("pgbouncer.ini"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("pgbouncer is not installed (apt-get install pgbouncer): {e}")
            });
        let url = format!("postgres://{user}@127.0.0.1:{listen_port}/{database}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", listen_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not start (log: {d}/pgbouncer.log)"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { url, dir, child }
    }
}

impl Drop for TransactionPooler {
    fn drop(&mut self) {
        // runuser passes SIGTERM on to pgbouncer; pgbouncer stops on it at once.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
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
