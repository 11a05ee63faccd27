//! Fill an InfluxDB stream buffer with `roimon_gpu`-like points, for
//! measuring replay and end-to-end write throughput
//! (`scripts/bench-influx.sh`): `fill_buffer DIR POINTS [PER_RECORD]`.

use roimon_influx::{Buffer, BufferConfig, Point, encode_lines};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: fill_buffer DIR POINTS [PER_RECORD]");
        std::process::exit(2);
    };
    let per: u64 = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(1000);
    let mut cfg = BufferConfig::new(dir, 1 << 40);
    cfg.sync = false;
    let (mut buf, _) = Buffer::open(cfg).expect("open the buffer");
    // One point per GPU and second, 8 GPUs, ending now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now - (n / 8) as i64 - 1;
    let mut made = 0u64;
    let mut text = String::new();
    while made < n {
        let k = per.min(n - made);
        let pts: Vec<Point> = (made..made + k)
            .map(|i| {
                let mut p = Point::new("roimon_gpu", (start + (i / 8) as i64) * 1_000_000_000)
                    .tag("node", "bench-node")
                    .tag(
                        "gpu_uuid",
                        format!("GPU-{:08x}-1c2d-4e5f-8a9b-0c1d2e3f4a5b", i % 8),
                    )
                    .tag("gpu", (i % 8).to_string())
                    .tag("team", "search")
                    .tag("workload", "chat")
                    .tag("currency", "EUR");
                for (j, f) in [
                    "power_watts",
                    "energy_joules_total",
                    "cost_energy_total",
                    "cost_capex_total",
                    "cost_total",
                    "facility_energy_joules_total",
                ]
                .iter()
                .enumerate()
                {
                    p = p.float(*f, 1000.0 * (j + 1) as f64 + i as f64 * 0.001);
                }
                p
            })
            .collect();
        text.clear();
        let w = encode_lines(&pts, &mut text);
        buf.append(&text, w as u32).expect("append");
        made += k;
    }
    buf.sync().expect("sync");
    println!("{} points, {} bytes in {}", buf.points(), buf.bytes(), dir);
}
