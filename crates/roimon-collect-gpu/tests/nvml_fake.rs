//! The NVML collector end to end through nvml-wrapper, against the fake
//! libnvidia-ml from `roimon-fake-nvml` loaded by absolute path: every test has
//! its own directory and library copy, so they also run safely as threads.

use roimon_collect_gpu::NvmlCollector;
use roimon_core::{Collector, GpuReading, Joules, Reading, SampleError, Watts};
use roimon_fake_nvml::{BASE_ENERGY_MJ, DRIVER_VERSION, FakeGpu, FakeNvml};

const GIB: u64 = 1 << 30;

fn open(fake: &FakeNvml) -> NvmlCollector {
    NvmlCollector::open(Some(&fake.library())).expect("open the fake NVML")
}

fn sample(collector: &mut NvmlCollector) -> Vec<Reading> {
    let mut out = Vec::new();
    collector.sample(&mut out).expect("sample");
    out
}

fn gpu(reading: &Reading) -> &GpuReading {
    match reading {
        Reading::Gpu(g) => g,
        other => panic!("expected a GPU reading, got {other:?}"),
    }
}

fn energy(reading: &Reading) -> Joules {
    gpu(reading).energy_counter.expect("energy counter")
}

#[test]
fn reads_every_field_of_several_gpus() {
    let gpus = [
        FakeGpu::new(0),
        FakeGpu {
            name: "NVIDIA A100-SXM4-40GB".into(),
            power_mw: 123_456,
            util_percent: 7,
            mem_used: 3 * GIB,
            mem_total: 40 * GIB,
            temp_c: 61,
            power_limit_mw: 400_000,
            ..FakeGpu::new(1)
        },
        FakeGpu {
            uuid: "GPU-5f3c0000-aaaa-bbbb-cccc-123456789abc".into(),
            util_percent: 100,
            mem_used: 0,
            ..FakeGpu::new(2)
        },
    ];
    let fake = FakeNvml::new(&gpus).unwrap();
    fake.set_clock(1000.0);
    let mut c = open(&fake);
    assert_eq!(c.name(), "nvml");
    assert_eq!(c.driver_version(), DRIVER_VERSION);
    assert_eq!(c.device_count(), 3);

    let out = sample(&mut c);
    assert_eq!(out.len(), 3);
    for (i, (reading, fake_gpu)) in out.iter().zip(&gpus).enumerate() {
        let expected = GpuReading {
            index: i as u32,
            uuid: fake_gpu.uuid.clone(),
            name: fake_gpu.name.clone(),
            power: Some(Watts::from_milliwatts(fake_gpu.power_mw)),
            energy_counter: Some(Joules::from_millijoules(fake_gpu.energy_mj_at(1000.0))),
            utilization: Some(f64::from(fake_gpu.util_percent) / 100.0),
            memory_used_bytes: Some(fake_gpu.mem_used),
            memory_total_bytes: Some(fake_gpu.mem_total),
            temperature_celsius: Some(f64::from(fake_gpu.temp_c)),
            power_limit: Some(Watts::from_milliwatts(fake_gpu.power_limit_mw)),
            processes: None,
        };
        assert_eq!(gpu(reading), &expected);
    }
    // Spot-check the conversions against literal values too.
    let a100 = gpu(&out[1]);
    assert_eq!(a100.power, Some(Watts(123.456)));
    assert_eq!(a100.utilization, Some(0.07));
    assert_eq!(a100.power_limit, Some(Watts(400.0)));
    assert_eq!(a100.uuid, "GPU-00000000-0000-0000-0000-000000000001");
    assert_eq!(gpu(&out[2]).utilization, Some(1.0));
}

#[test]
fn gpu_without_energy_counter_still_reports_power() {
    let fake = FakeNvml::new(&[
        FakeGpu {
            energy_counter: false,
            ..FakeGpu::new(0)
        },
        FakeGpu::new(1),
    ])
    .unwrap();
    let mut c = open(&fake);
    for _ in 0..2 {
        let out = sample(&mut c);
        assert_eq!(out.len(), 2);
        assert_eq!(gpu(&out[0]).energy_counter, None);
        assert_eq!(gpu(&out[0]).power, Some(Watts(350.0)));
        assert_eq!(gpu(&out[0]).temperature_celsius, Some(45.0));
        assert!(gpu(&out[1]).energy_counter.is_some());
    }
}

#[test]
fn energy_counter_follows_the_clock_exactly() {
    let fake = FakeNvml::new(&[
        FakeGpu::new(0),
        FakeGpu {
            power_mw: 712_345,
            ..FakeGpu::new(1)
        },
    ])
    .unwrap();
    let mut c = open(&fake);
    fake.set_clock(100.0);
    let first = sample(&mut c);
    fake.set_clock(110.0);
    let second = sample(&mut c);

    assert_eq!(
        energy(&first[0]),
        Joules::from_millijoules(BASE_ENERGY_MJ + 350_000 * 100)
    );
    // 350 W for 10 s, and 712.345 W for 10 s.
    assert_eq!(energy(&second[0]) - energy(&first[0]), Joules(3500.0));
    // Exact in the driver's millijoules; in joules up to f64 rounding at ~5e6 J.
    assert_eq!(
        energy(&first[1]),
        Joules::from_millijoules(BASE_ENERGY_MJ + 712_345 * 100)
    );
    assert_eq!(
        energy(&second[1]),
        Joules::from_millijoules(BASE_ENERGY_MJ + 712_345 * 110)
    );
    let delta = energy(&second[1]) - energy(&first[1]);
    let expected = Watts(712.345).over(roimon_core::Seconds(10.0));
    assert!(
        (delta.0 - expected.0).abs() < 1e-6,
        "{delta:?} vs {expected:?}"
    );
    // A frozen clock freezes the counter.
    let third = sample(&mut c);
    assert_eq!(energy(&third[0]), energy(&second[0]));
}

#[test]
fn counter_reset_makes_the_raw_counter_drop() {
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1)]).unwrap();
    let mut c = open(&fake);
    fake.set_clock(100.0);
    let before = sample(&mut c);

    fake.set_clock(200.0);
    fake.reset_counter(0);
    let at_reset = sample(&mut c);
    assert!(
        energy(&at_reset[0]).0 < energy(&before[0]).0,
        "{:?} then {:?}",
        energy(&before[0]),
        energy(&at_reset[0])
    );
    assert_eq!(energy(&at_reset[0]), Joules(0.0));
    // The other GPU was not reloaded.
    assert!(energy(&at_reset[1]).0 > energy(&before[1]).0);

    fake.set_clock(204.0);
    let after = sample(&mut c);
    assert_eq!(energy(&after[0]), Joules(350.0 * 4.0));

    // A second reload restarts it again.
    fake.reset_counter(0);
    fake.set_clock(205.0);
    assert_eq!(energy(&sample(&mut c)[0]), Joules(0.0));
}

#[test]
fn lost_gpu_is_a_fault_the_others_still_read_and_it_recovers() {
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1), FakeGpu::new(2)]).unwrap();
    let mut c = open(&fake);
    assert!(sample(&mut c).iter().all(|r| matches!(r, Reading::Gpu(_))));

    fake.set_lost(1, true);
    for _ in 0..3 {
        let out = sample(&mut c);
        assert_eq!(out.len(), 3);
        assert_eq!(gpu(&out[0]).index, 0);
        assert_eq!(gpu(&out[2]).index, 2);
        match &out[1] {
            Reading::DeviceFault { device, message } => {
                assert_eq!(device, &FakeGpu::uuid_for(1));
                assert!(
                    message.contains("nvmlDeviceGetHandleByIndex_v2")
                        && message.contains("fell off the bus"),
                    "{message}"
                );
            }
            other => panic!("expected a fault, got {other:?}"),
        }
    }

    fake.set_lost(1, false);
    let out = sample(&mut c);
    assert_eq!(gpu(&out[1]).uuid, FakeGpu::uuid_for(1));
    assert_eq!(gpu(&out[1]).power, Some(Watts(350.0)));
}

#[test]
fn gpu_lost_before_its_identity_is_known_is_named_by_index() {
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1)]).unwrap();
    fake.set_lost(0, true);
    let mut c = open(&fake);
    assert_eq!(c.device_count(), 2);
    let out = sample(&mut c);
    assert!(
        matches!(&out[0], Reading::DeviceFault { device, .. } if device == "index 0"),
        "{out:?}"
    );
    assert_eq!(gpu(&out[1]).index, 1);
    fake.set_lost(0, false);
    assert_eq!(gpu(&sample(&mut c)[0]).uuid, FakeGpu::uuid_for(0));
}

#[test]
fn unreadable_device_count_fails_the_sample_then_recovers() {
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    let mut c = open(&fake);
    fake.set_count_failing(true);
    let mut out = Vec::new();
    let err = c.sample(&mut out).unwrap_err();
    assert!(
        matches!(&err, SampleError::Failed(m) if m.contains("nvmlDeviceGetCount")),
        "{err:?}"
    );
    assert!(out.is_empty());
    fake.set_count_failing(false);
    assert_eq!(sample(&mut c).len(), 1);
}

#[test]
fn missing_library_is_unavailable() {
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    let missing = fake.dir().join("nowhere").join("libnvidia-ml.so.1");
    let err = NvmlCollector::open(Some(&missing)).unwrap_err();
    assert!(
        matches!(&err, SampleError::Unavailable(m) if m.contains("nowhere")),
        "{err:?}"
    );
}

#[test]
fn missing_driver_is_unavailable_and_broken_config_is_failed() {
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    let conf = fake.dir().join(roimon_fake_nvml::CONFIG_FILE_NAME);

    std::fs::remove_file(&conf).unwrap();
    let err = NvmlCollector::open(Some(&fake.library())).unwrap_err();
    assert!(
        matches!(&err, SampleError::Unavailable(m) if m.contains("driver is not loaded")),
        "{err:?}"
    );

    std::fs::write(&conf, "only,three,fields\n").unwrap();
    let err = NvmlCollector::open(Some(&fake.library())).unwrap_err();
    assert!(matches!(&err, SampleError::Failed(_)), "{err:?}");
}

#[test]
fn separate_copies_are_separate_instances_in_one_process() {
    let a = FakeNvml::new(&[FakeGpu {
        name: "Fake A".into(),
        ..FakeGpu::new(0)
    }])
    .unwrap();
    let b = FakeNvml::new(&[
        FakeGpu {
            name: "Fake B".into(),
            power_mw: 1_000,
            ..FakeGpu::new(0)
        },
        FakeGpu::new(1),
    ])
    .unwrap();
    let mut ca = open(&a);
    let mut cb = open(&b);
    a.set_clock(10.0);
    b.set_clock(20.0);
    b.set_lost(1, true);
    for _ in 0..2 {
        let ra = sample(&mut ca);
        let rb = sample(&mut cb);
        assert_eq!(ra.len(), 1);
        assert_eq!(gpu(&ra[0]).name, "Fake A");
        assert_eq!(
            energy(&ra[0]),
            Joules::from_millijoules(BASE_ENERGY_MJ + 3_500_000)
        );
        assert_eq!(rb.len(), 2);
        assert_eq!(gpu(&rb[0]).name, "Fake B");
        assert_eq!(
            energy(&rb[0]),
            Joules::from_millijoules(BASE_ENERGY_MJ + 20_000)
        );
        assert!(matches!(rb[1], Reading::DeviceFault { .. }));
    }
    // Closing one instance leaves the other working.
    drop(ca);
    assert_eq!(gpu(&sample(&mut cb)[0]).name, "Fake B");
    // Two collectors on the same copy share it (NVML init is refcounted).
    let mut cb2 = open(&b);
    drop(cb);
    assert_eq!(gpu(&sample(&mut cb2)[0]).name, "Fake B");
}

fn processes(reading: &Reading) -> &roimon_core::GpuProcesses {
    gpu(reading).processes.as_ref().expect("processes listed")
}

#[test]
fn lists_processes_with_their_utilisation_and_mig_devices_with_their_slices() {
    use roimon_core::{GpuProcess, MigInstance};
    use roimon_fake_nvml::FakeProcess;
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1), FakeGpu::new(2)]).unwrap();
    fake.set_clock(10.0);
    fake.set_processes(
        0,
        &[
            FakeProcess::compute(100, Some(60)),
            FakeProcess {
                graphics: true,
                ..FakeProcess::compute(200, Some(20))
            },
            FakeProcess::compute(300, None),
        ],
    );
    fake.set_mig(1, &[4, 3]);
    fake.set_mig_processes(1, 0, &[FakeProcess::compute(400, Some(90))]);
    let mut c = open(&fake);
    // Off by default: no process calls.
    assert!(sample(&mut c).iter().all(|r| gpu(r).processes.is_none()));
    c.set_processes(true);
    fake.set_clock(11.0);
    let out = sample(&mut c);
    let p0 = processes(&out[0]);
    assert!(p0.mig.is_empty());
    let got: Vec<(u32, Option<f64>)> = p0
        .running
        .iter()
        .map(|p| (p.pid, p.sm_utilization))
        .collect();
    assert_eq!(got, [(100, Some(0.6)), (200, Some(0.2)), (300, None)]);
    assert_eq!(p0.running[0].used_memory_bytes, Some(GIB));
    let p1 = processes(&out[1]);
    assert_eq!(
        p1.mig,
        [
            MigInstance { id: 0, slices: 4 },
            MigInstance { id: 1, slices: 3 }
        ]
    );
    // No per-process samples on a MIG device.
    assert_eq!(
        p1.running,
        [GpuProcess {
            pid: 400,
            used_memory_bytes: Some(GIB),
            sm_utilization: None,
            mig_instance: Some(0),
        }]
    );
    assert_eq!(
        processes(&out[2]),
        &roimon_core::GpuProcesses::default(),
        "idle"
    );

    // Samples are asked for since the last one: at the same time there are
    // none (equal shares); later ones come again.
    let again = sample(&mut c);
    assert!(
        processes(&again[0])
            .running
            .iter()
            .all(|p| p.sm_utilization.is_none())
    );
    fake.set_clock(12.0);
    // Unsupported per-process utilisation is not a fault: no samples.
    fake.set_process_utilization_supported(0, false);
    let out = sample(&mut c);
    assert_eq!(processes(&out[0]).running.len(), 3);
    assert!(
        processes(&out[0])
            .running
            .iter()
            .all(|p| p.sm_utilization.is_none())
    );
    fake.set_process_utilization_supported(0, true);
    fake.set_clock(13.0);
    // A job that exits and one that moves are simply (not) listed.
    fake.set_processes(0, &[]);
    fake.set_processes(2, &[FakeProcess::compute(100, Some(50))]);
    let out = sample(&mut c);
    assert!(processes(&out[0]).running.is_empty());
    assert_eq!(processes(&out[2]).running[0].pid, 100);
    assert_eq!(processes(&out[2]).running[0].sm_utilization, Some(0.5));
    // A lost GPU faults as before; the others keep their processes.
    fake.set_lost(2, true);
    let out = sample(&mut c);
    assert!(matches!(out[2], Reading::DeviceFault { .. }));
    assert!(processes(&out[1]).running.len() == 1);
}
