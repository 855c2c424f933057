//! Runs the fuzz drivers without libFuzzer, on a stable toolchain.
//!
//! ```text
//! replay TARGET [FILE|DIR]...            every file once (a corpus, a crash)
//! replay TARGET --random N [--seed S]    N inputs from a small generator
//! replay --write-seeds DIR               valid segments of this build, as seeds
//! ```
//!
//! TARGET is `segment_bytes` or `segment_mutate`. The random mode mutates
//! the seed corpus (bit flips, byte overwrites, truncation, splices), which
//! reaches the same code as the fuzzer, more slowly and without coverage
//! guidance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: replay TARGET [FILE|DIR].. | replay TARGET --random N [--seed S] | replay --write-seeds DIR"
    );
    ExitCode::from(64)
}

fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            v.retain(|f| f.is_file());
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = if seeds.is_empty() || rng.below(8) == 0 {
        (0..rng.below(2048)).map(|_| rng.next() as u8).collect()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..1 + rng.below(8) {
        if v.is_empty() {
            v.push(rng.next() as u8);
        }
        let len = v.len();
        match rng.below(6) {
            0 => v[rng.below(len)] ^= 1 << rng.below(8),
            1 => v[rng.below(len)] = rng.next() as u8,
            2 => {
                let at = rng.below(len.saturating_sub(8));
                let word = rng.next().to_le_bytes();
                let n = (len - at).min(8);
                v[at..at + n].copy_from_slice(&word[..n]);
            }
            3 => v.truncate(rng.below(len + 1)),
            4 => {
                let extra = rng.below(64);
                v.extend((0..extra).map(|_| rng.next() as u8));
            }
            _ => {
                let at = rng.below(len);
                let n = rng.below(16).min(len - at);
                for b in &mut v[at..at + n] {
                    *b = [0, 0xff, 0x80, 0x7f][rng.below(4)];
                }
            }
        }
    }
    v
}

fn main() -> ExitCode {
    let code = run_main();
    mproc_fuzz::cleanup();
    code
}

fn run_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        return usage();
    };
    if first == "--write-seeds" {
        let Some(dir) = args.get(1) else {
            return usage();
        };
        for (name, bytes) in mproc_fuzz::valid_segments() {
            let sel: u8 = if name == "lock" { 3 } else { 0 };
            let mut v = vec![sel];
            v.extend_from_slice(&bytes);
            let path = Path::new(dir).join(format!("valid-{name}"));
            if let Err(e) = std::fs::write(&path, v) {
                eprintln!("replay: {}: {e}", path.display());
                return ExitCode::from(73);
            }
        }
        return ExitCode::SUCCESS;
    }
    let run: fn(&[u8]) = match first.as_str() {
        "segment_bytes" => mproc_fuzz::segment_bytes,
        "segment_mutate" => mproc_fuzz::segment_mutate,
        _ => return usage(),
    };
    let rest = &args[1..];
    if rest.first().map(String::as_str) == Some("--random") {
        let Some(n) = rest.get(1).and_then(|s| s.parse::<u64>().ok()) else {
            return usage();
        };
        let seed = match rest.get(2).map(String::as_str) {
            Some("--seed") => match rest.get(3).and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => s,
                None => return usage(),
            },
            _ => 0x9E37_79B9_7F4A_7C15,
        };
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(first);
        let seeds: Vec<Vec<u8>> = files(&[corpus])
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .collect();
        let mut rng = Rng(seed | 1);
        // With REPLAY_SAVE=FILE, each input is written there before it
        // runs, so that a hang or a crash leaves the input behind.
        let save = std::env::var_os("REPLAY_SAVE");
        for _ in 0..n {
            let input = mutate(&mut rng, &seeds);
            if let Some(path) = &save {
                let _ = std::fs::write(path, &input);
            }
            run(&input);
        }
        println!("replay {first}: {n} random inputs (seed {seed}), no failure");
        return ExitCode::SUCCESS;
    }
    let list = files(&rest.iter().map(PathBuf::from).collect::<Vec<_>>());
    for f in &list {
        match std::fs::read(f) {
            Ok(bytes) => run(&bytes),
            Err(e) => {
                eprintln!("replay: {}: {e}", f.display());
                return ExitCode::from(66);
            }
        }
    }
    println!("replay {first}: {} inputs, no failure", list.len());
    ExitCode::SUCCESS
}
