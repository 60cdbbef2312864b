//! A throwaway PostgreSQL server for the tests: Debian's `postgresql` package, on a free
//! loopback port, in a temporary folder, started on first use by each test binary.
//!
//! Call [`postgres()`]; give each test a database of its own with
//! [`Postgres::new_database`]. The server runs through the same process machinery as the
//! control plane (`process`): tied to the test process with `PR_SET_PDEATHSIG`, killed by the
//! `atexit` hook, folder removed. [`Postgres::stop`] (fast shutdown) and [`Postgres::start`]
//! let a test take the database away and bring it back on the same port.
//!
//! PostgreSQL refuses to run as root, and the tests run as root in CI: then `initdb` and the
//! server run as `nobody` through `setpriv` (util-linux), which also re-arms the parent-death
//! signal that a change of user clears, and the folder is handed to `nobody`. As any other user
//! they run as that user. Clients authenticate with a password (SCRAM) over TCP, as in
//! production; TLS is on, with a certificate from a test CA (`ca.crt` in [`Postgres::dir`]).
//! `fsync` is off: the tests check transactions, not disks (the benchmark keeps it on).
//!
//! Binaries: the newest `/usr/lib/postgresql/<version>/bin`, else `initdb` on `PATH`. Missing
//! binaries are a loud failure that names `apt-get install postgresql`, never a skip.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::{log_tail, pki, process, write_file};

const NAME: &str = "postgres";
const USER: &str = "tokenwarden";
/// The unprivileged account the server runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
/// Addresses and client networks beyond loopback, set by [`postgres_reachable_from`].
static REACH: OnceLock<(String, String)> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server of this test binary, started on first use.
pub fn postgres() -> &'static Postgres {
    match SERVER.get_or_init(Postgres::start_first) {
        Ok(server) => server,
        Err(message) => panic!("the test PostgreSQL server did not start: {message}"),
    }
}

/// [`postgres()`], started listening on `address` too and accepting password logins from
/// `network` (CIDR): for the real node's pods, whose server runs in the node's network
/// namespace. Call it before anything else of the binary calls [`postgres()`].
pub fn postgres_reachable_from(address: &str, network: &str) -> &'static Postgres {
    let reach = REACH.get_or_init(|| (address.to_owned(), network.to_owned()));
    assert_eq!(
        reach,
        &(address.to_owned(), network.to_owned()),
        "postgres_reachable_from called twice with different addresses"
    );
    postgres()
}

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    /// `(uid, gid)` to run as, when the tests run as root.
    run_as: Option<(u32, u32)>,
}

impl Postgres {
    /// The folder with the data directory, the log and `ca.crt`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (in every URL this gives out).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The URL of database `db`, without TLS.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// The URL of database `db` over TLS, verifying the server against the test CA.
    pub fn tls_url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.password,
            self.port,
            self.dir.join("ca.crt").display()
        )
    }

    /// Creates an empty database and returns its name.
    pub async fn new_database(&self) -> String {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.admin_execute(&format!("CREATE DATABASE {name}")).await;
        name
    }

    /// Runs `sql` in the `postgres` database as the superuser.
    pub async fn admin_execute(&self, sql: &str) {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test PostgreSQL server");
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.expect("run admin SQL");
        drop(client);
        let _ = driver.await;
    }

    /// Turns database `db` read-only as a demoted primary is: new sessions refuse writes
    /// (SQLSTATE 25006), and the sessions open now are ended, as a failover ends them.
    pub async fn make_read_only(&self, db: &str) {
        self.admin_execute(&format!(
            "ALTER DATABASE {db} SET default_transaction_read_only = on; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .await;
    }

    /// A plain client of database `db`, for tests that look at the tables themselves.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server");
        tokio::spawn(connection);
        client
    }

    /// Stops the server with a fast shutdown (SIGINT: open transactions are rolled back,
    /// connections closed), as an operator or a failover would.
    pub fn stop(&self) {
        assert!(
            process::stop_with(NAME, libc::SIGINT),
            "the test PostgreSQL server was not running"
        );
    }

    /// Starts the server again on the same port and data.
    pub fn start(&self) {
        self.spawn()
            .unwrap_or_else(|message| panic!("restarting PostgreSQL: {message}"));
    }

    fn start_first() -> Result<Postgres, String> {
        process::register_cleanup();
        let bin = bin_dir()?;
        let dir = process::temporary_folder("tokenwarden-postgres-")?;
        pki::write(&dir)?;
        let password = pki::random_token()?;
        write_file(&dir.join("pwfile"), &password)?;
        let run_as = unprivileged_ids()?;
        if let Some((uid, gid)) = run_as {
            for entry in ["", "pwfile", "ca.crt", "apiserver.crt", "apiserver.key"] {
                chown(&dir.join(entry), uid, gid)?;
            }
        }
        std::fs::set_permissions(
            dir.join("apiserver.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("chmod the server key: {e}"))?;
        let mut initdb = as_server_user(run_as, &bin.join("initdb"));
        initdb.args(["--no-sync", "--encoding=UTF8", "--auth-local=trust"]);
        initdb.args(["--auth-host=scram-sha-256", "--username", USER]);
        initdb.arg(format!("--pwfile={}", dir.join("pwfile").display()));
        initdb.arg("--pgdata").arg(dir.join("data"));
        let output = initdb
            .output()
            .map_err(|e| format!("running {}/initdb: {e}", bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        if let Some((_, network)) = REACH.get() {
            let hba = dir.join("data/pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba)
                .map_err(|e| format!("reading {}: {e}", hba.display()))?;
            rules.push_str(&format!("host all all {network} scram-sha-256\n"));
            write_file(&hba, &rules)?;
        }
        let server = Postgres {
            dir,
            bin,
            port: free_port(),
            password,
            run_as,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&self) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        let mut command = as_server_user(self.run_as, &self.bin.join("postgres"));
        command.arg("-D").arg(self.dir.join("data"));
        command
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir);
        for setting in [
            match REACH.get() {
                Some((address, _)) => format!("listen_addresses=127.0.0.1,{address}"),
                None => "listen_addresses=127.0.0.1".to_owned(),
            },
            "fsync=off".to_owned(),
            "max_connections=300".to_owned(),
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", self.dir.join("apiserver.crt").display()),
            format!("ssl_key_file={}", self.dir.join("apiserver.key").display()),
        ] {
            command.args(["-c", &setting]);
        }
        process::spawn_command(NAME, command, &log)?;
        self.wait_ready(&log)
    }

    /// Polls `pg_isready` until the server accepts connections, exits, or time runs out.
    fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if !process::running(NAME) {
                return Err(format!("postgres exited\n{}", log_tail(log)));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map_err(|e| format!("running pg_isready: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "postgres not ready within {READY_TIMEOUT:?}\n{}",
            log_tail(log)
        ))
    }
}

/// `program`, run as [`UNPRIVILEGED`] when this process is root (else as this user), for a
/// test that needs a process without the rights of the files it did not make.
pub fn unprivileged(program: &Path) -> Command {
    let run_as = unprivileged_ids().unwrap_or_else(|message| panic!("{message}"));
    as_server_user(run_as, program)
}

/// `program`, run as the unprivileged user when `run_as` says so.
fn as_server_user(run_as: Option<(u32, u32)>, program: &Path) -> Command {
    match run_as {
        None => Command::new(program),
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                // A change of user clears the parent-death signal; set it again.
                "--pdeathsig=SIGKILL".to_owned(),
                "--".to_owned(),
            ]);
            command.arg(program);
            command
        }
    }
}

/// The ids of [`UNPRIVILEGED`] when this process is root, else `None`.
#[allow(unsafe_code)] // libc
pub fn unprivileged_ids() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| format!("reading /etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&UNPRIVILEGED))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            format!("running as root, PostgreSQL needs the unprivileged user '{UNPRIVILEGED}', which /etc/passwd lacks")
        })
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {} to {uid}:{gid}: {e}", path.display()))
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else the folder of `initdb` on `PATH`.
fn bin_dir() -> Result<PathBuf, String> {
    const TOOLS: [&str; 3] = ["initdb", "postgres", "pg_isready"];
    let complete = |dir: &Path| TOOLS.iter().all(|tool| dir.join(tool).is_file());
    let debian = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| complete(dir))
        .ok_or_else(|| {
            format!(
                "the PostgreSQL server binaries ({}) are neither under {}/<version>/bin nor on \
                 PATH: apt-get install postgresql",
                TOOLS.join(", "),
                debian.display()
            )
        })
}
