//! Process across real processes: CPython's `_TestProcess` scenarios (exit
//! codes, terminate/kill giving the signal, join timeouts), panics reported
//! with their message, handles passed to children, daemons, and reaping.

mod common;

use std::time::{Duration, Instant};

use common::{timed, JOIN};
use mproc::{
    pipe, Connection, ExitCode, Lock, Pipe, PipeError, Process, ProcessBuilder, ProcessError,
    Queue, SpawnError, StartMethod,
};

fn sleeper(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Whether `pid` is gone or a zombie nobody reaped yet (`Some(true)`: gone,
/// `Some(false)`: zombie, `None`: running).
fn state(pid: u32) -> Option<bool> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => Some(true),
        Ok(s) => match s.rsplit(')').next().map(str::trim_start) {
            Some(r) if r.starts_with('Z') => Some(false),
            Some(r) if r.starts_with('X') => Some(true),
            _ => None,
        },
    }
}

#[test]
fn test_process_lifecycle_and_exit_code() {
    let mut p = Process::spawn(300u64, sleeper).unwrap();
    assert!(p.pid() > 0 && p.pid() != std::process::id());
    assert!(p.is_alive());
    assert_eq!(p.exit_code(), None);
    p.join_timeout(JOIN).unwrap();
    assert!(!p.is_alive());
    assert_eq!(p.exit_code(), Some(ExitCode::Exited(0)));
    assert!(p.exit_code().unwrap().success());
    assert_eq!(p.exit_code().unwrap().python(), 0);
    assert_eq!(p.join(), Err(ProcessError::AlreadyJoined));
    assert_eq!(state(p.pid()), Some(true), "joined means reaped");
}

#[test]
fn test_join_zero_timeout_on_a_live_child_returns_at_once() {
    let mut p = Process::spawn(60_000u64, sleeper).unwrap();
    let (r, d) = timed(|| p.join_timeout(Duration::ZERO));
    assert!(r.unwrap_err().is_timeout());
    assert!(d < Duration::from_millis(200), "{d:?}");
    let (r, d) = timed(|| p.join_deadline(Instant::now() - Duration::from_secs(1)));
    assert!(r.unwrap_err().is_timeout());
    assert!(d < Duration::from_millis(200), "{d:?}");
    let (r, d) = timed(|| p.join_timeout(Duration::from_millis(300)));
    assert!(r.unwrap_err().is_timeout());
    assert!(d >= Duration::from_millis(290), "{d:?}");
    assert!(
        p.is_alive(),
        "a timed-out join leaves it running and joinable"
    );
    p.kill().unwrap();
    assert_eq!(
        p.join_timeout(JOIN),
        Err(ProcessError::Died(ExitCode::Signaled(9)))
    );
}

#[test]
fn test_terminate_gives_sigterm() {
    let mut p = Process::spawn(60_000u64, sleeper).unwrap();
    assert!(p.is_alive());
    p.terminate().unwrap();
    let (r, d) = timed(|| p.join_timeout(JOIN));
    assert_eq!(r, Err(ProcessError::Died(ExitCode::Signaled(15))));
    assert!(d < Duration::from_secs(10));
    assert_eq!(p.exit_code().unwrap().python(), -15);
    assert!(!p.is_alive());
    // Signalling an ended process is a no-op, not an error.
    p.terminate().unwrap();
    p.kill().unwrap();
}

#[test]
fn test_kill_gives_sigkill() {
    let mut p = Process::spawn(60_000u64, sleeper).unwrap();
    p.kill().unwrap();
    assert_eq!(
        p.join_timeout(JOIN),
        Err(ProcessError::Died(ExitCode::Signaled(9)))
    );
    assert_eq!(p.exit_code().unwrap().python(), -9);
    assert_eq!(p.exit_code().unwrap().to_string(), "killed by signal 9");
}

#[test]
fn test_sys_exit_codes() {
    for code in [0, 1, 2, 42, 255] {
        let mut p = Process::spawn(code, |c: i32| std::process::exit(c)).unwrap();
        let r: Result<(), _> = p.join_timeout(JOIN);
        assert_eq!(r, Err(ProcessError::Died(ExitCode::Exited(code))));
        assert_eq!(p.exit_code(), Some(ExitCode::Exited(code)));
    }
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let mut p = Process::spawn(7u32, |n: u32| -> u32 {
        if n == 7 {
            panic!("seven is not allowed (got {n})");
        }
        n
    })
    .unwrap();
    match p.join_timeout(JOIN) {
        Err(ProcessError::Panicked { message }) => {
            assert_eq!(message, "seven is not allowed (got 7)")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(p.exit_code(), Some(ExitCode::Exited(101)));
}

#[test]
fn results_of_any_size_come_back() {
    let mut p = Process::spawn(3_000_000usize, |n: usize| vec![0xa5u8; n]).unwrap();
    let v = p.join_timeout(JOIN).unwrap();
    assert_eq!(v.len(), 3_000_000);
    assert!(v.iter().all(|&b| b == 0xa5));
}

#[test]
fn handles_of_every_kind_travel_together() {
    let (_dir, ns) = common::namespace();
    let named: Queue<String> = Queue::create_in(&ns, "named", Default::default()).unwrap();
    let anon: Queue<u32> = Queue::new(0).unwrap();
    let lock = Lock::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let guard = lock.lock().unwrap();
    let mut p = Process::spawn(
        (named.clone(), anon.clone(), lock.clone(), theirs),
        |(named, anon, lock, c): (Queue<String>, Queue<u32>, Lock, Connection)| {
            named.put("named".into()).unwrap();
            anon.put(7).unwrap();
            c.send(&"waiting for the lock").unwrap();
            let _g = lock.lock().map_err(|_| ()).unwrap();
            c.send(&"got it").unwrap();
            c.recv::<u32>().unwrap() + 1
        },
    )
    .unwrap();
    assert_eq!(named.get().unwrap(), "named");
    assert_eq!(anon.get().unwrap(), 7);
    assert_eq!(mine.recv::<String>().unwrap(), "waiting for the lock");
    assert!(mine.poll(Duration::from_millis(200)).map(|r| !r).unwrap());
    drop(guard);
    assert_eq!(mine.recv::<String>().unwrap(), "got it");
    mine.send(&41u32).unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), 42);
    assert_eq!(mine.recv::<u32>(), Err(PipeError::Disconnected));
}

#[test]
fn spawning_from_many_threads_hands_each_end_to_exactly_one_child() {
    // If a child inherited another child's end, that end would stay open
    // after its own child exits and `recv` would not see the end of stream.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                for _ in 0..5 {
                    let (r, w) = Pipe::simplex().unwrap();
                    let ms = 10 * t;
                    let mut p = Process::spawn((w, ms), |(w, ms): (Connection, u64)| {
                        w.send(&ms).unwrap();
                        std::thread::sleep(Duration::from_millis(ms));
                    })
                    .unwrap();
                    assert_eq!(r.recv::<u64>().unwrap(), ms);
                    let (e, d) = timed(|| r.recv_timeout::<u64>(Duration::from_secs(20)));
                    assert_eq!(e, Err(PipeError::Disconnected), "after {d:?}");
                    p.join_timeout(JOIN).unwrap();
                }
            });
        }
    });
}

#[test]
fn dropped_children_are_reaped() {
    let p = Process::spawn(100u64, sleeper).unwrap();
    let pid = p.pid();
    drop(p);
    let deadline = Instant::now() + JOIN;
    let mut st = state(pid);
    while st != Some(true) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        st = state(pid);
    }
    assert_eq!(st, Some(true), "the dropped child was reaped");
}

#[test]
fn a_dropped_daemon_is_killed() {
    let p = ProcessBuilder::new()
        .daemon(true)
        .spawn(60_000u64, sleeper)
        .unwrap();
    let pid = p.pid();
    let (_, d) = timed(|| drop(p));
    assert!(d < Duration::from_secs(10));
    assert_eq!(state(pid), Some(true));
}

#[test]
fn a_daemon_dies_with_its_parent() {
    // The middle process starts a daemon grandchild, reports its pid, and
    // then dies abruptly (no destructors run).
    let q: Queue<u32> = Queue::new(0).unwrap();
    let mut middle = Process::spawn(q.clone(), |q: Queue<u32>| {
        let d = ProcessBuilder::new()
            .daemon(true)
            .spawn(60_000u64, sleeper)
            .unwrap();
        q.put(d.pid()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(3);
    })
    .unwrap();
    let daemon = q.get_timeout(JOIN).unwrap();
    let r: Result<(), _> = middle.join_timeout(JOIN);
    assert_eq!(r, Err(ProcessError::Died(ExitCode::Exited(3))));
    let deadline = Instant::now() + JOIN;
    while state(daemon).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        state(daemon).is_some(),
        "the daemon outlived the process that asked it not to"
    );
}

#[test]
fn a_child_can_spawn_children() {
    let mut p = Process::spawn(3u32, |n: u32| {
        let mut kids: Vec<Process<u32>> = (0..n)
            .map(|i| Process::spawn(i, |i: u32| i * 10).unwrap())
            .collect();
        kids.iter_mut().map(|k| k.join().unwrap()).sum::<u32>()
    })
    .unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), 30);
}

#[test]
fn fork_is_refused_in_a_multithreaded_process() {
    // The test harness runs this test on its own thread: two at least.
    let r = ProcessBuilder::new()
        .start_method(StartMethod::Fork)
        .spawn(1u8, |x: u8| x);
    assert!(matches!(r, Err(SpawnError::ForkUnsound(_))), "{r:?}");
}

#[test]
fn fork_in_a_single_threaded_process() {
    // A spawned child runs its function on its only thread: it may fork.
    let (mine, theirs) = pipe().unwrap();
    let mut p = Process::spawn(theirs, |c: Connection| {
        let fork = || ProcessBuilder::new().start_method(StartMethod::Fork);
        // Results, handles (this very pipe end, shared by memory) and panics.
        let (x, y) = pipe().unwrap();
        let mut a = fork()
            .spawn(y, |y: Connection| {
                y.send(&"from the forked child").unwrap();
                21u32 * 2
            })
            .unwrap();
        c.send(&x.recv::<String>().unwrap()).unwrap();
        let r = a.join().unwrap();
        assert!(x.recv::<String>().unwrap_err().is_disconnected());
        let mut b = fork().spawn((), |()| -> u8 { panic!("forked panic") }).unwrap();
        let panicked = matches!(b.join(), Err(ProcessError::Panicked { message }) if message == "forked panic");
        let mut k = fork().spawn(60_000u64, sleeper).unwrap();
        k.kill().unwrap();
        let killed = k.join().unwrap_err() == ProcessError::Died(ExitCode::Signaled(9));
        (r, panicked, killed)
    })
    .unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "from the forked child");
    assert_eq!(p.join_timeout(JOIN).unwrap(), (42, true, true));
}
