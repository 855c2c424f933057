//! The shell recipes of CLI.md, run exactly as printed (each line taken
//! from the file), with the commands they call (`convert`, `deploy.sh`,
//! ...) stood in for by small scripts on `PATH`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Ns;

/// The line of CLI.md that starts (after spaces) with `first`.
fn line(first: &str) -> String {
    include_str!("../CLI.md")
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("CLI.md has no line starting {first:?}"))
        .to_string()
}

/// A shell in the namespace's directory with `mproc` and the stand-ins in
/// `stubs` (name, script body) first on `PATH`.
fn shell(ns: &Ns, stubs: &[(&str, &str)], script: &str) -> assert_cmd::Command {
    let bin = ns.file("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("mproc");
    if !link.exists() {
        std::os::unix::fs::symlink(common::bin(), &link).unwrap();
    }
    for (name, body) in stubs {
        let at = match name.strip_prefix("./") {
            Some(local) => ns.dir().join(local),
            None => bin.join(name),
        };
        std::fs::write(&at, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut c = assert_cmd::Command::new("sh");
    c.arg("-c")
        .arg(script)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("MPROC_DIR", ns.dir())
        .env_remove("RUST_LOG")
        .current_dir(ns.dir())
        .timeout(common::WATCHDOG);
    c
}

fn read(ns: &Ns, file: &str) -> String {
    std::fs::read_to_string(ns.dir().join(file)).unwrap_or_default()
}

#[test]
fn lock_recipes() {
    let ns = Ns::new();
    // cron: a second run while the first holds the lock is skipped, quietly,
    // with status 0.
    let cron = line("mproc -q lock -n -E 0 nightly");
    let hold = "mproc lock nightly -c 'touch held; sleep 2' &\n\
                while [ ! -e held ]; do sleep 0.05; done\n";
    shell(
        &ns,
        &[("nightly-report", "echo ran >> report.txt")],
        &format!("{hold}{cron} && echo skipped\n{cron}; wait\n{cron}"),
    )
    .assert()
    .success()
    .stdout("skipped\n")
    .stderr("");
    assert_eq!(
        read(&ns, "report.txt"),
        "ran\n",
        "only the run after the first ended"
    );

    // read-modify-write of a file from many shells at once.
    let counter = line("mproc lock counter -c");
    std::fs::write(ns.dir().join("count"), "0").unwrap();
    let many: String = (0..20).map(|_| format!("{counter} &\n")).collect();
    shell(&ns, &[], &format!("{many}wait")).assert().success();
    assert_eq!(read(&ns, "count").trim(), "20");

    // busy (75) told apart from the command's own failure.
    let deploy = line("mproc lock -w 2.5 -E 75 deploy");
    shell(
        &ns,
        &[("./deploy.sh", "exit 3")],
        &format!(
            "{deploy}\nmproc lock deploy -c 'touch dheld; sleep 4' &\n\
             while [ ! -e dheld ]; do sleep 0.05; done\n{deploy}\nwait"
        ),
    )
    .assert()
    .success()
    .stdout("status 3\nstatus 75\n");
}

#[test]
fn queue_recipes() {
    let ns = Ns::new();
    let create = line("mproc queue create jobs --maxsize 100");
    let put_args = line("mproc queue put jobs \"resize img1.png\"");
    let put_lines = line("find . -name '*.log' | mproc queue put jobs --lines");
    let consumer = [
        line("while msg=$(mproc queue get jobs); do"),
        line("echo \"working on $msg\""),
        "done".to_string(),
    ]
    .join("\n");
    let close = line("mproc queue close jobs");
    for f in ["a.log", "b.log"] {
        std::fs::write(ns.dir().join(f), "").unwrap();
    }
    let out = shell(
        &ns,
        &[],
        &format!(
            "{create}\n{put_args}\n{put_lines}\n({consumer}) > worked.txt &\n\
             sleep 0.3\n{close}\nwait\ncat worked.txt"
        ),
    )
    .assert()
    .success();
    let mut got: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "working on ./a.log",
            "working on ./b.log",
            "working on resize img1.png",
            "working on resize img2.png"
        ]
    );

    // stat, read by the shell.
    let ns = Ns::new();
    let eval = line("$ eval \"$(mproc queue stat jobs)\"")
        .trim_start_matches("$ ")
        .to_string();
    shell(
        &ns,
        &[],
        &format!("mproc queue create jobs --maxsize 100\nmproc queue put jobs a b c\n{eval}"),
    )
    .assert()
    .success()
    .stdout("3 of 100\n");
}

#[test]
fn consume_sem_and_event_recipes() {
    let ns = Ns::new();
    // `convert` stand-in: writes the target file.
    let convert = ("convert", "sleep 0.1; echo \"$1\" > \"$2\"");
    for f in ["p1.png", "p2.png", "p3.png"] {
        std::fs::write(ns.dir().join(f), "").unwrap();
    }
    let consume = line("mproc queue consume jobs -j 4 -- sh -c");
    shell(
        &ns,
        &[convert],
        &format!(
            "mproc queue create jobs\nmproc queue put jobs p1.png p2.png p3.png\n\
             mproc queue close jobs\n{consume}"
        ),
    )
    .assert()
    .success();
    for f in ["p1.jpg", "p2.jpg", "p3.jpg"] {
        assert!(ns.dir().join(f).exists(), "{f} not made by consume");
    }

    let tries = line("mproc queue consume jobs -j 2 --tries 3");
    shell(
        &ns,
        &[("./upload.sh", "m=$(cat); echo \"$m\" >> uploaded.txt")],
        &format!(
            "mproc queue rm jobs\nmproc queue create jobs\nmproc queue put jobs u1 u2\n\
             mproc queue close jobs\n{tries}"
        ),
    )
    .assert()
    .success();
    let mut up: Vec<_> = read(&ns, "uploaded.txt")
        .lines()
        .map(str::to_string)
        .collect();
    up.sort();
    assert_eq!(up, ["u1", "u2"]);

    let ns = Ns::new();
    for f in ["s1.png", "s2.png", "s3.png", "s4.png", "s5.png"] {
        std::fs::write(ns.dir().join(f), "").unwrap();
    }
    let sem = line("for f in *.png; do mproc sem -j 4 convert");
    shell(&ns, &[convert], &sem).assert().success();
    for i in 1..=5 {
        assert!(Path::new(&ns.file(&format!("s{i}.jpg"))).exists());
    }

    let event = line("mproc event wait db-ready -t 30 && ./migrate");
    shell(
        &ns,
        &[("./migrate", "echo migrated")],
        &format!("(sleep 0.3; mproc event set db-ready) &\n{event}\nwait"),
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success()
    .stdout("migrated\n");
}

#[test]
fn script_lock_recipe() {
    let ns = Ns::new();
    let script = format!(
        "{}\nmproc lock -n nightly true 2>/dev/null; echo busy=$?\n{}\n\
         mproc lock -n nightly true; echo free=$?\n\
         {}\nmproc lock -n nightly true 2>/dev/null; echo second=$?\nkill -9 $$",
        line("mproc lock --hold --pid $$ -n nightly"),
        line("mproc unlock nightly"),
        line("mproc lock --hold --pid $$ -n nightly"),
    );
    let out = shell(&ns, &[], &script).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "busy=1\nfree=0\nsecond=1\n",
        "{out:?}"
    );
    // The script was SIGKILLed holding the lock: it is free again.
    shell(&ns, &[], "mproc lock -w 5 nightly true")
        .assert()
        .success();
}
