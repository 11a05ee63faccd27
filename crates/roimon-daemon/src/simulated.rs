//! A simulated GPU source for demos on machines without GPUs. Labelled as such
//! (model "Simulated GPU", UUIDs starting with `SIM-`) and never the default.

use roimon_core::{Collector, GpuReading, Joules, Reading, SampleError, Watts};
use std::time::Instant;

/// Synthetic GPUs whose power follows a slow wave.
#[derive(Debug)]
pub struct SimulatedGpus {
    start: Instant,
    last: Option<f64>,
    energy: Vec<f64>,
}

impl SimulatedGpus {
    /// `count` simulated GPUs.
    pub fn new(count: u32) -> Self {
        Self {
            start: Instant::now(),
            last: None,
            energy: vec![0.0; count as usize],
        }
    }

    fn power(i: usize, t: f64) -> f64 {
        300.0 + 150.0 * ((t / 60.0) + i as f64).sin()
    }
}

impl Collector for SimulatedGpus {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn sample(&mut self, out: &mut Vec<Reading>) -> Result<(), SampleError> {
        let t = self.start.elapsed().as_secs_f64();
        let dt = self.last.map_or(0.0, |l| t - l);
        self.last = Some(t);
        for (i, e) in self.energy.iter_mut().enumerate() {
            let p = Self::power(i, t);
            *e += p * dt;
            out.push(Reading::Gpu(GpuReading {
                index: i as u32,
                uuid: format!("SIM-GPU-{i:04}"),
                name: "Simulated GPU".into(),
                power: Some(Watts(p)),
                energy_counter: Some(Joules(*e)),
                utilization: Some((p - 150.0) / 300.0),
                memory_used_bytes: Some(40 << 30),
                memory_total_bytes: Some(80 << 30),
                temperature_celsius: Some(40.0 + p / 20.0),
                power_limit: Some(Watts(700.0)),
                processes: None,
            }));
        }
        Ok(())
    }
}
