//! The child processes and temporary folders of the test control plane, and their teardown.
//!
//! Children are spawned from one thread that lives as long as the test process, with
//! `PR_SET_PDEATHSIG` (which fires when the spawning *thread* ends), so a test process that is
//! killed or aborts takes them along. At a normal exit (tests passed or failed) an `atexit` hook
//! kills them and removes the folders. `stop` ends one child gracefully (SIGTERM, or the
//! signal `stop_with` is given, then SIGKILL after a grace period). Only children registered here are ever signalled.
#![allow(unsafe_code)] // libc: atexit, kill and the process group of the components

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// How long a stop waits after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(30);

struct Spawn {
    command: Command,
    reply: Sender<std::io::Result<Child>>,
}

static SPAWNER: OnceLock<Mutex<Sender<Spawn>>> = OnceLock::new();
static CHILDREN: Mutex<Vec<(String, Child)>> = Mutex::new(Vec::new());
static FOLDERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static CLEANUP: Once = Once::new();
static AT_EXIT: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Starts `program args` as the child called `name`, stdout and stderr appended to `log`.
pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<(), String> {
    let mut command = Command::new(program);
    command.args(args);
    spawn_command(name, command, log)
}

/// Starts a prepared `command` as the child called `name`, stdout and stderr appended to
/// `log`; like [`spawn`], for commands that need environment variables.
pub fn spawn_command(name: &str, mut command: Command, log: &Path) -> Result<(), String> {
    if running(name) {
        return Err(format!("{name} is already running"));
    }
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("opening {}: {e}", log.display()))
    };
    command
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?);
    let (reply, answer) = mpsc::channel();
    spawner()
        .send(Spawn { command, reply })
        .map_err(|_| "the spawner thread is gone".to_owned())?;
    let child = answer
        .recv()
        .map_err(|_| "the spawner thread did not answer".to_owned())?
        .map_err(|e| format!("starting {name}: {e}"))?;
    children().push((name.to_owned(), child));
    Ok(())
}

/// Kills the child called `name` with SIGKILL, as a crash would; false when there was none.
pub fn kill(name: &str) -> bool {
    let mut children = children();
    let Some(index) = children.iter().position(|(n, _)| n == name) else {
        return false;
    };
    let (_, mut child) = children.remove(index);
    drop(children);
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Whether the child called `name` is alive; forgets it once it has exited.
pub fn running(name: &str) -> bool {
    let mut children = children();
    children.retain_mut(|(n, child)| n != name || matches!(child.try_wait(), Ok(None)));
    children.iter().any(|(n, _)| n == name)
}

/// The process id of the running child called `name` (for reading `/proc`).
pub fn pid(name: &str) -> Option<u32> {
    children()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, child)| child.id())
}

/// Stops the child called `name`; false when there was none running.
pub fn stop(name: &str) -> bool {
    stop_with(name, libc::SIGTERM)
}

/// Stops the child called `name` with `signal` (for programs whose graceful stop is another
/// signal than SIGTERM), then SIGKILL after the grace period; false when there was none.
pub fn stop_with(name: &str, signal: libc::c_int) -> bool {
    let mut children = children();
    let Some(index) = children.iter().position(|(n, _)| n == name) else {
        return false;
    };
    let (_, mut child) = children.remove(index);
    drop(children);
    terminate(&mut child, signal, GRACE);
    true
}

/// Registers the `atexit` hook; idempotent.
pub fn register_cleanup() {
    CLEANUP.call_once(|| {
        // SAFETY: `cleanup` is an `extern "C" fn()` that does not unwind.
        let status = unsafe { libc::atexit(cleanup) };
        assert_eq!(
            status, 0,
            "registering the test control plane's atexit hook"
        );
    });
}

/// Runs `hook` at exit after the children are killed and before the folders are removed, for
/// what outlives a process (the real node's cgroups). Hooks run also when a test panicked.
pub fn at_exit(hook: fn()) {
    register_cleanup();
    AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).push(hook);
}

/// Makes a temporary folder `<tmp>/<prefix>XXXX` that is removed when the process exits
/// (unless `TOKENWARDEN_TEST_KEEP` is set). First removes the folders of this prefix that
/// test processes killed outright (SIGKILL skips the `atexit` hook) left behind: each folder
/// holds the pid of its process in `owner.pid`.
pub fn temporary_folder(prefix: &str) -> Result<PathBuf, String> {
    remove_orphaned_folders(prefix);
    let folder = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("creating a temporary folder: {e}"))?
        .keep();
    FOLDERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(folder.clone());
    std::fs::write(folder.join("owner.pid"), std::process::id().to_string())
        .map_err(|e| format!("writing {}/owner.pid: {e}", folder.display()))?;
    Ok(folder)
}

fn remove_orphaned_folders(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let owner = std::fs::read_to_string(entry.path().join("owner.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<libc::pid_t>().ok());
        if owner.is_some_and(gone) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether no process has the id `pid` (any more).
pub fn gone(pid: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 sends nothing; it only asks whether the pid exists.
    let asked = unsafe { libc::kill(pid, 0) };
    asked == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

extern "C" fn cleanup() {
    // Nothing may unwind out of an extern "C" fn: catch whatever goes wrong here.
    let _ = std::panic::catch_unwind(|| {
        // SIGKILL: at exit a quick end matters more than a clean one, and the data goes anyway.
        for (_, mut child) in std::mem::take(&mut *children()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for hook in std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner())) {
            hook();
        }
        let folders = std::mem::take(&mut *FOLDERS.lock().unwrap_or_else(|e| e.into_inner()));
        for folder in folders {
            if std::env::var_os("TOKENWARDEN_TEST_KEEP").is_some() {
                eprintln!("test control plane: kept {}", folder.display());
            } else {
                let _ = std::fs::remove_dir_all(&folder);
            }
        }
    });
}

/// `signal`, then wait up to `grace`, then SIGKILL if it is still there.
fn terminate(child: &mut Child, signal: libc::c_int, grace: Duration) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped, so not reused.
        unsafe { libc::kill(pid, signal) };
    }
    let start = Instant::now();
    while matches!(child.try_wait(), Ok(None)) && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn children() -> MutexGuard<'static, Vec<(String, Child)>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawner() -> Sender<Spawn> {
    SPAWNER
        .get_or_init(|| {
            let (sender, requests) = mpsc::channel::<Spawn>();
            std::thread::Builder::new()
                .name("test-control-plane-spawner".to_owned())
                .spawn(move || {
                    for Spawn { mut command, reply } in requests {
                        let _ = reply.send(spawn_tied_to_this_process(&mut command));
                    }
                })
                .expect("starting the spawner thread");
            Mutex::new(sender)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Spawns `command` so that the kernel kills it when this thread (and so this process) ends.
fn spawn_tied_to_this_process(command: &mut Command) -> std::io::Result<Child> {
    dies_with_spawning_thread(command);
    command.spawn()
}

/// Makes the process `command` starts die (SIGKILL) when the thread that starts it ends, so a
/// test process killed outright takes along the kubectl, helm or buildah it was waiting for
/// (which would otherwise outlive it, and keep the real node's network namespace alive). For
/// commands the starting thread waits for (`output`, `status`), or the spawner thread's.
pub fn dies_with_spawning_thread(command: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    };
}
