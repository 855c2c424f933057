//! What a measurement prints: one JSON object per line on stdout, and the
//! round-trip statistics.

pub fn emit(v: serde_json::Value) {
    println!("{v}");
}

pub fn rtt_stats(mut s: Vec<u64>) -> (f64, f64) {
    s.sort_unstable();
    let med = s[s.len() / 2] as f64 / 1e3;
    let p99 = s[((s.len() * 99) / 100).min(s.len() - 1)] as f64 / 1e3;
    (med, p99)
}

