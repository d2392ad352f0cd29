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

/// Statements on an event's tables (see [`crate::sharded::EVENT_TABLES`]) that do not filter
/// by the event: no `event_id = $n` (or `= ANY($n)`) bound to a parameter, and not marked as
/// one of the three kinds allowed to go without:
/// - `/* by key */`: a lookup by a bare id or key (a booking, payment, ticket or listing id,
///   which carries its shard): mostly a use case's first statement, which learns the event
///   from it; also a commit replay's key record and a door scan of another event's ticket;
/// - `/* scan */`: background work over every event (the sweeper, the reconciler, `verify`);
/// - `/* fan-out */`: a customer's own pages across events (their tickets, listings, payouts).
///
/// A group commit's statement (`/* grouped */`) finds its rows by the (event, key) pairs it was
/// given, joined from `unnest` of parameter arrays (`event_id = x.ev`): a filter by event that
/// the planner sees per row. An `event_id = ANY($n)` beside it would tempt the planner to read
/// every row of those events; the keys' own `= ANY($n)` is what steers it to their index.
///
/// Inserts of new rows name their event in the row itself and need no filter.
pub fn unfiltered_statements(log: &[String]) -> Vec<&str> {
    log.iter()
        .map(String::as_str)
        .filter(|sql| !filters_by_event(sql))
        .collect()
}

fn filters_by_event(sql: &str) -> bool {
    let text = sql.trim_start();
    if let Some(grouped) = text.strip_prefix("/* grouped */") {
        // A group's rows are found by the (event, key) pairs it was given, joined from arrays.
        let words: String = grouped.split_whitespace().collect::<Vec<_>>().join(" ");
        return words.contains("unnest(")
            && ["event_id = x.ev", "event_id = y.ev"]
                .iter()
                .any(|j| words.contains(j));
    }
    if ["/* by key */", "/* scan */", "/* fan-out */"]
        .iter()
        .any(|m| text.starts_with(m))
    {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    // Only rows read or changed need finding: a table named after FROM, JOIN or UPDATE (not
    // one a new row goes INTO).
    let finds_rows = words.windows(2).any(|w| {
        matches!(w[0], "from" | "join" | "update") && crate::sharded::EVENT_TABLES.contains(&w[1])
    });
    if !finds_rows {
        return true;
    }
    // `event_id = $n` or `event_id = ANY($n)`, with any qualifier before `event_id`.
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("event_id") {
        let after = rest[at + "event_id".len()..].trim_start();
        if let Some(value) = after.strip_prefix('=') {
            let value = value.trim_start();
            let value = value
                .strip_prefix("any")
                .map(|v| v.trim_start().trim_start_matches('('))
                .unwrap_or(value);
            if value.starts_with('$') {
                return true;
            }
        }
        rest = &rest[at + "event_id".len()..];
    }
    false
}

/// Records every statement a store sends and, when dropped at the end of a test that passed,
/// fails it if any statement on an event's tables did not filter by the event (see
/// [`unfiltered_statements`]). Keeps its test database alive as long as itself.
#[derive(Debug)]
pub struct StatementCheck {
    pub log: crate::StatementLog,
    pub database: TestDatabase,
}

impl Drop for StatementCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let log = self.log.take();
        let mut bad = unfiltered_statements(&log);
        bad.sort_unstable();
        bad.dedup();
        assert!(
            bad.is_empty(),
            "statements on an event's tables that do not filter by event_id:\n{}",
            bad.join("\n---\n")
        );
    }
}

#[cfg(test)]
mod statement_filter_tests {
    use super::*;

    fn unfiltered(sql: &str) -> bool {
        !unfiltered_statements(&[sql.to_owned()]).is_empty()
    }

    #[test]
    fn statements_without_an_event_filter_are_found() {
        assert!(unfiltered(
            "UPDATE bookings SET status = $2 WHERE booking_id = $1"
        ));
        assert!(unfiltered(
            "SELECT t.* FROM tickets t JOIN listings l ON l.event_id = t.event_id \
             WHERE t.ticket_id = $1"
        ));
        assert!(unfiltered(
            "DELETE FROM idempotency_keys WHERE created_at < $1"
        ));
        assert!(unfiltered(
            "INSERT INTO idempotency_keys (event_id) SELECT b.event_id FROM bookings b \
             WHERE b.booking_id = $1"
        ));
    }

    #[test]
    fn grouped_statements_must_join_by_the_event() {
        assert!(!unfiltered(
            "/* grouped */ UPDATE seats s SET state = 'SOLD'
             FROM unnest($1::uuid[], $2::text[]) AS y(ev, seat)
             WHERE s.event_id = y.ev AND s.seat_id = y.seat"
        ));
        assert!(unfiltered(
            "/* grouped */ UPDATE seats s SET state = 'SOLD'
             FROM unnest($1::text[]) AS y(seat) WHERE s.seat_id = y.seat"
        ));
    }

    #[test]
    fn filtered_marked_and_unrelated_statements_pass() {
        assert!(!unfiltered(
            "UPDATE bookings SET status = $2 WHERE event_id = $3 AND booking_id = $1"
        ));
        assert!(!unfiltered(
            "UPDATE payments SET status = $2 WHERE event_id = ANY($5) AND payment_id = ANY($1)"
        ));
        assert!(!unfiltered("SELECT 1 FROM seats s WHERE s.event_id=$1"));
        assert!(!unfiltered(
            "/* by key */ SELECT event_id FROM bookings WHERE booking_id = $1"
        ));
        assert!(!unfiltered(
            "  /* scan */ SELECT * FROM payments WHERE status = $1"
        ));
        assert!(!unfiltered(
            "INSERT INTO tickets (ticket_id, event_id) VALUES ($1, $2)"
        ));
        assert!(!unfiltered(
            "WITH b AS (INSERT INTO bookings (booking_id) VALUES ($1) RETURNING 1), \
             o AS (INSERT INTO outbox (event_id) SELECT $2 WHERE $3 IS NOT NULL RETURNING 1) \
             SELECT 1"
        ));
        assert!(!unfiltered(
            "INSERT INTO seats (event_id, seat_id) SELECT $1, * FROM unnest($2::text[])"
        ));
        assert!(!unfiltered(
            "SELECT position FROM outbox WHERE position > $1"
        ));
    }
}
