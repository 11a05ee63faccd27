//! The collector's logging contract: a failing GPU is logged once at warn and
//! once at info on recovery (not every interval), an unsupported field once at
//! debug. A test binary of its own: `tracing`'s per-callsite interest cache is
//! process-wide, so a scoped subscriber is only reliable when no other test
//! threads emit events concurrently.

use std::io;
use std::sync::{Arc, Mutex};

use roimon_collect_gpu::NvmlCollector;
use roimon_core::{Collector, Reading};
use roimon_fake_nvml::{FakeGpu, FakeNvml};

/// A `tracing` writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_failures_recoveries_and_unsupported_fields_once() {
    let fake = FakeNvml::new(&[
        FakeGpu {
            energy_counter: false,
            ..FakeGpu::new(0)
        },
        FakeGpu::new(1),
    ])
    .unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut faults = 0;
    tracing::subscriber::with_default(subscriber, || {
        let mut c = NvmlCollector::open(Some(&fake.library())).unwrap();
        let mut run = |n| {
            for _ in 0..n {
                let mut out = Vec::new();
                c.sample(&mut out).unwrap();
                faults += out
                    .iter()
                    .filter(|r| matches!(r, Reading::DeviceFault { .. }))
                    .count();
            }
        };
        run(2);
        fake.set_lost(1, true);
        run(5);
        fake.set_lost(1, false);
        run(5);
    });
    assert_eq!(faults, 5);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines =
        |needle: &str| -> Vec<&str> { log.lines().filter(|l| l.contains(needle)).collect() };
    let failed = lines("GPU read failed");
    assert_eq!(failed.len(), 1, "{log}");
    assert!(failed[0].contains(" WARN "), "{log}");
    assert!(failed[0].contains(&FakeGpu::uuid_for(1)), "{log}");
    let recovered = lines("GPU readable again");
    assert_eq!(recovered.len(), 1, "{log}");
    assert!(
        recovered[0].contains(" INFO ") && recovered[0].contains("failed_samples=5"),
        "{log}"
    );
    let unsupported = lines("nvmlDeviceGetTotalEnergyConsumption");
    assert_eq!(unsupported.len(), 1, "{log}");
    assert!(
        unsupported[0].contains("DEBUG") && unsupported[0].contains(&FakeGpu::uuid_for(0)),
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}
