//! A fake NVML for tests and benchmarks: a small C library (`fake_nvml.c`,
//! built by `build.rs`) exporting the part of the NVML C ABI roimon uses,
//! plus this Rust side that lays out a directory for it and drives it.
//!
//! The fake takes no environment variables. When NVML is initialised it finds
//! its own path and reads `fake-nvml.conf` next to it (one GPU per line), and
//! on every call it looks at control files in that directory:
//!
//! | file        | effect                                                                  |
//! |-------------|-------------------------------------------------------------------------|
//! | `clock`     | decimal seconds used as "now" (absent: `CLOCK_MONOTONIC`)               |
//! | `lost-<i>`  | every call for GPU `i` returns `NVML_ERROR_GPU_IS_LOST`                 |
//! | `reset-<i>` | a generation number; a change restarts GPU `i`'s energy counter at 0    |
//! | `fail-count`| `nvmlDeviceGetCount_v2` fails with `NVML_ERROR_UNKNOWN`                  |
//! | `procs-<i>` | processes on GPU `i` (see [`FakeNvml::set_processes`])                  |
//! | `mig-<i>`   | MIG on for GPU `i`: slice counts of its MIG devices ([`FakeNvml::set_mig`]) |
//! | `procs-<i>-<m>` | processes in MIG device `m` of GPU `i`                              |
//! | `no-putil-<i>` | `nvmlDeviceGetProcessUtilization` is not supported on GPU `i`        |
//!
//! The energy counter is in millijoules: the driver is taken to have been loaded
//! at clock 0 with [`BASE_ENERGY_MJ`] already counted, so at time `t` it reads
//! `BASE_ENERGY_MJ + power_mw × t` (mW × s = mJ); after a reset at time `r` it
//! reads `power_mw × (t − r)`. Tests that use [`FakeNvml::set_clock`] should set
//! the clock before the first sample and only move it forwards.
//!
//! Every [`FakeNvml`] holds its own copy of the library. Copies at different
//! paths are separate instances for the dynamic loader, so tests running as
//! threads of one process do not see each other's GPUs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempDir;

/// The file name the fake library is installed under (what NVML is called on Linux).
pub const LIBRARY_FILE_NAME: &str = "libnvidia-ml.so.1";
/// The configuration file the fake reads at `nvmlInit`.
pub const CONFIG_FILE_NAME: &str = "fake-nvml.conf";
/// The energy counter of a GPU that has not been reset, at clock 0, in millijoules.
pub const BASE_ENERGY_MJ: u64 = 5_000_000_000;
/// The driver version the fake reports.
pub const DRIVER_VERSION: &str = "550.54.15";

/// The fake library as built, inside the target directory. Prefer
/// [`FakeNvml::library`], which is a private copy configured for one test.
pub fn library_path() -> &'static Path {
    Path::new(env!("FAKE_NVML_LIB"))
}

/// One GPU the fake reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGpu {
    /// Marketing name (no commas or line breaks).
    pub name: String,
    /// UUID (no commas or line breaks).
    pub uuid: String,
    /// Constant power draw, milliwatts.
    pub power_mw: u32,
    /// Whether `nvmlDeviceGetTotalEnergyConsumption` is supported.
    pub energy_counter: bool,
    /// GPU utilisation, percent (0..=100).
    pub util_percent: u32,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Core temperature, °C.
    pub temp_c: u32,
    /// Enforced power limit, milliwatts.
    pub power_limit_mw: u32,
}

impl FakeGpu {
    /// An H100-like GPU at `index`: 350 W of 700 W, 50 % busy, 20 of 80 GiB
    /// in use, 45 °C, with an energy counter and the UUID [`FakeGpu::uuid_for`].
    /// Change fields with struct update syntax:
    /// `FakeGpu { power_mw: 100_000, ..FakeGpu::new(1) }`.
    pub fn new(index: u32) -> Self {
        const GIB: u64 = 1 << 30;
        Self {
            name: "NVIDIA H100 80GB HBM3".to_owned(),
            uuid: Self::uuid_for(index),
            power_mw: 350_000,
            energy_counter: true,
            util_percent: 50,
            mem_used: 20 * GIB,
            mem_total: 80 * GIB,
            temp_c: 45,
            power_limit_mw: 700_000,
        }
    }

    /// The default UUID of the GPU at `index`: `GPU-00000000-0000-0000-0000-00000000000N`.
    pub fn uuid_for(index: u32) -> String {
        format!("GPU-00000000-0000-0000-0000-{index:012}")
    }

    /// The counter value (mJ) this GPU reports at clock `secs` if it has not
    /// been reset, as the C side computes it.
    pub fn energy_mj_at(&self, secs: f64) -> u64 {
        (BASE_ENERGY_MJ as f64 + f64::from(self.power_mw) * secs.max(0.0) + 0.5) as u64
    }

    fn conf_line(&self) -> io::Result<String> {
        for (what, s) in [("name", &self.name), ("uuid", &self.uuid)] {
            if s.trim().is_empty() || s.len() >= 96 || s.contains([',', '\n', '\r', '#']) {
                return Err(invalid(format!(
                    "fake GPU {what} {s:?} must be 1..95 bytes without ',', '#' or line breaks"
                )));
            }
        }
        if self.util_percent > 100 {
            return Err(invalid(format!(
                "fake GPU utilisation {} % is over 100",
                self.util_percent
            )));
        }
        if self.mem_used > self.mem_total {
            return Err(invalid(format!(
                "fake GPU memory used {} exceeds total {}",
                self.mem_used, self.mem_total
            )));
        }
        Ok(format!(
            "{},{},{},{},{},{},{},{},{}\n",
            self.name,
            self.uuid,
            self.power_mw,
            u8::from(self.energy_counter),
            self.util_percent,
            self.mem_used,
            self.mem_total,
            self.temp_c,
            self.power_limit_mw
        ))
    }
}

/// One process the fake reports on a GPU (or a MIG device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeProcess {
    /// Process id.
    pub pid: u32,
    /// GPU memory it holds, bytes.
    pub used_bytes: u64,
    /// SM utilisation percent of its samples; `None`: no sample.
    pub sm_percent: Option<u32>,
    /// Listed by the graphics call instead of the compute call.
    pub graphics: bool,
}

impl FakeProcess {
    /// A compute process with 1 GiB and `sm_percent` utilisation samples.
    pub fn compute(pid: u32, sm_percent: Option<u32>) -> Self {
        Self {
            pid,
            used_bytes: 1 << 30,
            sm_percent,
            graphics: false,
        }
    }

    fn line(&self) -> String {
        let sm = self
            .sm_percent
            .map_or_else(|| "-".to_owned(), |p| p.min(100).to_string());
        let kind = if self.graphics { "g" } else { "c" };
        format!("{},{},{sm},{kind}\n", self.pid, self.used_bytes)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A directory holding a private copy of the fake library, its configuration
/// and its control files. A temporary directory (from [`FakeNvml::new`]) is
/// removed on drop; one passed to [`FakeNvml::in_dir`] is left in place.
///
/// The control methods panic on I/O errors: they are test helpers.
#[derive(Debug)]
pub struct FakeNvml {
    dir: PathBuf,
    gpus: Vec<FakeGpu>,
    /// Serialises read-modify-write of control files (`reset_counter`).
    lock: Mutex<()>,
    _temp: Option<TempDir>,
}

impl FakeNvml {
    /// A fresh temporary directory with the library and a configuration for `gpus`.
    pub fn new(gpus: &[FakeGpu]) -> io::Result<Self> {
        let temp = tempfile::Builder::new().prefix("fake-nvml-").tempdir()?;
        let mut fake = Self::in_dir(temp.path(), gpus)?;
        fake._temp = Some(temp);
        Ok(fake)
    }

    /// Installs the library and a configuration for `gpus` into `dir` (created
    /// if missing), which the caller owns. Control files left there by an
    /// earlier fake are removed, so the fake starts healthy on the monotonic
    /// clock. Files are replaced by rename, so a process that still has an
    /// older copy of the library loaded keeps working.
    pub fn in_dir(dir: impl AsRef<Path>, gpus: &[FakeGpu]) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let conf = gpus
            .iter()
            .map(FakeGpu::conf_line)
            .collect::<io::Result<String>>()?;
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name == "clock"
                || name == "fail-count"
                || name.starts_with("lost-")
                || name.starts_with("hang-")
                || name.starts_with("reset-")
                || name.starts_with("procs-")
                || name.starts_with("mig-")
                || name.starts_with("no-putil-")
            {
                fs::remove_file(dir.join(&*name))?;
            }
        }
        let staged = dir.join(format!(".{LIBRARY_FILE_NAME}.tmp"));
        fs::copy(library_path(), &staged)?;
        fs::rename(&staged, dir.join(LIBRARY_FILE_NAME))?;
        write_atomic(
            &dir,
            CONFIG_FILE_NAME,
            &format!(
                "# fake NVML: name,uuid,power_mw,has_energy_counter,util_gpu_percent,\
                 mem_used_bytes,mem_total_bytes,temp_c,power_limit_mw\n{conf}"
            ),
        )?;
        Ok(Self {
            dir,
            gpus: gpus.to_vec(),
            lock: Mutex::new(()),
            _temp: None,
        })
    }

    /// The absolute path of this fake's library, to hand to NVML's loader.
    pub fn library(&self) -> PathBuf {
        self.dir.join(LIBRARY_FILE_NAME)
    }

    /// The directory holding the library, configuration and control files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The GPUs this fake was configured with.
    pub fn gpus(&self) -> &[FakeGpu] {
        &self.gpus
    }

    /// Freezes the fake's clock at `secs` (until changed or [`Self::clear_clock`]).
    ///
    /// # Panics
    /// If `secs` is not finite or the file cannot be written.
    pub fn set_clock(&self, secs: f64) {
        assert!(secs.is_finite(), "fake clock must be finite, got {secs}");
        self.control_write("clock", &format!("{secs}\n"));
    }

    /// Returns the fake to `CLOCK_MONOTONIC`.
    ///
    /// # Panics
    /// If the file exists and cannot be removed.
    pub fn clear_clock(&self) {
        self.control_remove("clock");
    }

    /// Makes every call for GPU `index` fail with `NVML_ERROR_GPU_IS_LOST`, or stops it.
    ///
    /// # Panics
    /// If the control file cannot be written or removed.
    pub fn set_lost(&self, index: u32, lost: bool) {
        let name = format!("lost-{index}");
        if lost {
            self.control_write(&name, "");
        } else {
            self.control_remove(&name);
        }
    }

    /// Makes every call for GPU `index` block until `set_hung(index, false)`
    /// (a GPU fallen off the bus hanging the driver), or releases it.
    ///
    /// # Panics
    /// If the control file cannot be written or removed.
    pub fn set_hung(&self, index: u32, hung: bool) {
        let name = format!("hang-{index}");
        if hung {
            self.control_write(&name, "");
        } else {
            self.control_remove(&name);
        }
    }

    /// Simulates a driver reload for GPU `index`: its energy counter restarts
    /// from 0 at the next read (the time of that read is the reset moment).
    ///
    /// # Panics
    /// If the control file cannot be read or written.
    pub fn reset_counter(&self, index: u32) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("reset-{index}");
        let generation = match fs::read_to_string(self.dir.join(&name)) {
            Ok(s) => s.trim().parse::<i64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => panic!("fake NVML: cannot read {name}: {e}"),
        };
        self.control_write(&name, &format!("{}\n", generation + 1));
    }

    /// Makes `nvmlDeviceGetCount_v2` fail (`NVML_ERROR_UNKNOWN`), or stops it.
    ///
    /// # Panics
    /// If the control file cannot be written or removed.
    pub fn set_count_failing(&self, failing: bool) {
        if failing {
            self.control_write("fail-count", "");
        } else {
            self.control_remove("fail-count");
        }
    }

    /// Puts `procs` on GPU `index` (replacing what ran there); empty: idle.
    ///
    /// # Panics
    /// If the control file cannot be written.
    pub fn set_processes(&self, index: u32, procs: &[FakeProcess]) {
        let text: String = procs.iter().map(FakeProcess::line).collect();
        self.control_write(&format!("procs-{index}"), &text);
    }

    /// Turns MIG on for GPU `index` with one MIG device per entry of
    /// `slices` (its GPU instance slice count), or off when empty.
    ///
    /// # Panics
    /// If the control file cannot be written or removed.
    pub fn set_mig(&self, index: u32, slices: &[u32]) {
        let name = format!("mig-{index}");
        if slices.is_empty() {
            self.control_remove(&name);
        } else {
            let text: Vec<String> = slices.iter().map(u32::to_string).collect();
            self.control_write(&name, &format!("{}\n", text.join(",")));
        }
    }

    /// Puts `procs` in MIG device `mig` of GPU `index`.
    ///
    /// # Panics
    /// If the control file cannot be written.
    pub fn set_mig_processes(&self, index: u32, mig: u32, procs: &[FakeProcess]) {
        let text: String = procs.iter().map(FakeProcess::line).collect();
        self.control_write(&format!("procs-{index}-{mig}"), &text);
    }

    /// Makes per-process utilisation unsupported on GPU `index` (as on
    /// older or virtualised parts), or supported again.
    ///
    /// # Panics
    /// If the control file cannot be written or removed.
    pub fn set_process_utilization_supported(&self, index: u32, supported: bool) {
        let name = format!("no-putil-{index}");
        if supported {
            self.control_remove(&name);
        } else {
            self.control_write(&name, "");
        }
    }

    fn control_write(&self, name: &str, contents: &str) {
        write_atomic(&self.dir, name, contents)
            .unwrap_or_else(|e| panic!("fake NVML: cannot write {name}: {e}"));
    }

    fn control_remove(&self, name: &str) {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("fake NVML: cannot remove {name}: {e}"),
        }
    }
}

/// Writes `dir/name` through a temporary file and a rename, so the C side
/// never reads a half-written file.
fn write_atomic(dir: &Path, name: &str, contents: &str) -> io::Result<()> {
    let staged = dir.join(format!(".{name}.tmp"));
    fs::write(&staged, contents)?;
    fs::rename(&staged, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_library_exists() {
        let path = library_path();
        assert!(path.is_absolute(), "{}", path.display());
        assert!(fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false));
    }

    #[test]
    fn writes_config_and_private_library_copy() {
        let fake = FakeNvml::new(&[
            FakeGpu::new(0),
            FakeGpu {
                energy_counter: false,
                ..FakeGpu::new(1)
            },
        ])
        .unwrap();
        assert_eq!(fake.library(), fake.dir().join(LIBRARY_FILE_NAME));
        assert_eq!(
            fs::read(fake.library()).unwrap(),
            fs::read(library_path()).unwrap()
        );
        let conf = fs::read_to_string(fake.dir().join(CONFIG_FILE_NAME)).unwrap();
        let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "NVIDIA H100 80GB HBM3,GPU-00000000-0000-0000-0000-000000000000,350000,1,50,21474836480,85899345920,45,700000",
                "NVIDIA H100 80GB HBM3,GPU-00000000-0000-0000-0000-000000000001,350000,0,50,21474836480,85899345920,45,700000",
            ]
        );
    }

    #[test]
    fn control_files() {
        let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
        let dir = fake.dir();
        fake.set_clock(100.5);
        assert_eq!(fs::read_to_string(dir.join("clock")).unwrap(), "100.5\n");
        fake.clear_clock();
        assert!(!dir.join("clock").exists());
        fake.set_lost(0, true);
        assert!(dir.join("lost-0").exists());
        fake.set_lost(0, false);
        assert!(!dir.join("lost-0").exists());
        fake.reset_counter(0);
        fake.reset_counter(0);
        assert_eq!(fs::read_to_string(dir.join("reset-0")).unwrap(), "2\n");
        fake.set_count_failing(true);
        assert!(dir.join("fail-count").exists());
        fake.set_processes(
            0,
            &[
                FakeProcess::compute(7, Some(40)),
                FakeProcess {
                    graphics: true,
                    used_bytes: 5,
                    ..FakeProcess::compute(8, None)
                },
            ],
        );
        assert_eq!(
            fs::read_to_string(dir.join("procs-0")).unwrap(),
            "7,1073741824,40,c\n8,5,-,g\n"
        );
        fake.set_mig(0, &[4, 3]);
        assert_eq!(fs::read_to_string(dir.join("mig-0")).unwrap(), "4,3\n");
        fake.set_mig_processes(0, 1, &[FakeProcess::compute(9, None)]);
        assert!(dir.join("procs-0-1").exists());
        fake.set_mig(0, &[]);
        assert!(!dir.join("mig-0").exists());
        fake.set_process_utilization_supported(0, false);
        assert!(dir.join("no-putil-0").exists());
    }

    #[test]
    fn in_dir_clears_stale_controls_and_keeps_dir() {
        let temp = TempDir::new().unwrap();
        {
            let fake = FakeNvml::in_dir(temp.path(), &[FakeGpu::new(0)]).unwrap();
            fake.set_lost(0, true);
            fake.set_clock(5.0);
            fake.reset_counter(0);
        }
        assert!(temp.path().join(LIBRARY_FILE_NAME).exists());
        let fake = FakeNvml::in_dir(temp.path(), &[FakeGpu::new(0)]).unwrap();
        for stale in ["lost-0", "clock", "reset-0"] {
            assert!(!fake.dir().join(stale).exists(), "{stale} survived");
        }
    }

    #[test]
    fn rejects_unrepresentable_gpus() {
        let bad_name = FakeGpu {
            name: "A,B".into(),
            ..FakeGpu::new(0)
        };
        let err = FakeNvml::new(&[bad_name]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let bad_mem = FakeGpu {
            mem_used: 2,
            mem_total: 1,
            ..FakeGpu::new(0)
        };
        assert!(FakeNvml::new(&[bad_mem]).is_err());
    }

    #[test]
    fn energy_formula() {
        let gpu = FakeGpu::new(3);
        assert_eq!(gpu.uuid, "GPU-00000000-0000-0000-0000-000000000003");
        assert_eq!(gpu.energy_mj_at(0.0), BASE_ENERGY_MJ);
        assert_eq!(gpu.energy_mj_at(10.0), BASE_ENERGY_MJ + 3_500_000);
    }
}
