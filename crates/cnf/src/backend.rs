//! Run-time backend selection from a device string.

use crate::error::CnfError;
use burn::tensor::Device;

/// A parsed device string: which backend and which device index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's pure-Rust CPU backend (always available).
    Flex,
    /// libtorch on the CPU (`tch` feature).
    LibTorch,
    /// libtorch on CUDA device N (`tch` feature).
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses "flex" | "libtorch" | "cuda:N" (also "cuda" for device 0); case-insensitive.
    pub fn parse(s: &str) -> Result<Self, CnfError> {
        let t = s.trim().to_ascii_lowercase();
        let err = |reason: &str| CnfError::Device {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        match t.as_str() {
            "flex" | "cpu" | "" => Ok(Self::Flex),
            "libtorch" | "tch" | "libtorch-cpu" => Ok(Self::LibTorch),
            "cuda" => Ok(Self::Cuda(0)),
            _ => {
                if let Some(idx) = t.strip_prefix("cuda:") {
                    idx.parse::<usize>()
                        .map(Self::Cuda)
                        .map_err(|_| err("expected cuda:N with N a device index"))
                } else {
                    Err(err("expected one of flex, libtorch, cuda:N"))
                }
            }
        }
    }

    /// Short name of the backend for reports ("flex", "libtorch", "cuda:N").
    pub fn name(&self) -> String {
        match self {
            Self::Flex => "flex".into(),
            Self::LibTorch => "libtorch".into(),
            Self::Cuda(i) => format!("cuda:{i}"),
        }
    }

    /// Builds the burn device; fails when the backend is not compiled in.
    pub fn device(&self) -> Result<Device, CnfError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::LibTorch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::Cuda(i) => Ok(Device::libtorch_cuda(*i)),
            #[cfg(not(feature = "tch"))]
            _ => Err(CnfError::Device {
                spec: self.name(),
                reason: "this build has no libtorch backend (enable the `tch` feature)".into(),
            }),
        }
    }
}

/// Parses a device string ("flex" | "libtorch" | "cuda:N") into a burn [`Device`].
pub fn parse_device(s: &str) -> Result<Device, CnfError> {
    DeviceSpec::parse(s)?.device()
}

/// Whether a CUDA device with this index can be used through libtorch; `Err` holds the reason.
pub fn cuda_available(index: usize) -> Result<Device, String> {
    #[cfg(feature = "tch")]
    {
        // tch panics when CUDA is absent: catch it, and keep its message off stderr (the
        // caller reports the reason) by silencing the panic hook for the probe's duration.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let probe = std::panic::catch_unwind(|| {
            #[allow(deprecated)]
            let dev = Device::libtorch_cuda(index);
            let t = burn::tensor::Tensor::<1>::from_floats([1.0f32, 2.0], &dev);
            let v: f32 = t.sum().into_scalar();
            (dev, v)
        });
        std::panic::set_hook(hook);
        match probe {
            Ok((dev, v)) if (v - 3.0).abs() < 1e-6 => Ok(dev),
            Ok(_) => Err("CUDA probe returned a wrong value".into()),
            Err(_) => Err(format!("libtorch could not use CUDA device {index}")),
        }
    }
    #[cfg(not(feature = "tch"))]
    {
        let _ = index;
        Err("built without the `tch` feature".into())
    }
}

/// What kind of hardware and backend a [`Device`] is, read once from the device (autodiff or
/// not) and carried by the code that chooses kernels by it: the vector field
/// ([`crate::field::Kernels`]) and the training step ([`crate::parallel::ParallelStep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// libtorch on the CPU, whose intra-op thread count is a per-thread setting
    /// ([`crate::parallel::set_torch_threads`]).
    LibTorchCpu,
    /// libtorch on CUDA device N: many small operations cost launch latency rather than memory
    /// bandwidth.
    Cuda(usize),
    /// Any other backend or device (treated like a CPU that is not libtorch's).
    Other,
}

impl DeviceKind {
    /// The kind of `device`, with or without autodiff. burn 0.22 does not re-export its device
    /// enums, so this reads the variant from the device's Debug form: call it once per device,
    /// not per operation.
    pub fn of(device: &Device) -> Self {
        let name = format!("{device:?}");
        if let Some(rest) = name.split("Cuda(").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Self::Cuda(digits.parse().unwrap_or(0))
        } else if name.contains("LibTorch(Cpu)") {
            Self::LibTorchCpu
        } else if name.contains("Flex(") {
            Self::Flex
        } else {
            Self::Other
        }
    }

    /// Whether this is a GPU (see [`crate::field::Kernels::for_device`]).
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Cuda(_))
    }

    /// Whether this is libtorch on the CPU.
    pub fn is_libtorch_cpu(self) -> bool {
        self == Self::LibTorchCpu
    }
}

/// Keeps freed tensor memory in the process instead of returning it to the kernel after every
/// operation (glibc only; elsewhere a no-op). libtorch's CPU allocator frees each intermediate
/// tensor, and glibc's defaults hand blocks above its adaptive mmap threshold (and heap tops above
/// 128 KiB) back at once, so every training step page-faults its working set in again. Raising
/// the mmap threshold to 32 MiB (glibc's maximum) and the trim threshold to 1 GiB measured 7 %
/// more training samples/s on libtorch CPU (docs/PERFORMANCE.md). Call once at program start;
/// returns whether both settings were accepted.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before heavy allocation.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The environment variables that choose libtorch's CPU code paths, and the value each is
/// pinned to: MKL (libtorch's matrix products) picks its kernels by the CPU's make and
/// instruction sets unless `MKL_CBWR` names a branch, and ATen its vector kernels unless
/// `ATEN_CPU_CAPABILITY` does. Other kernels round differently, so the same seed trains other
/// flows on another machine.
pub const CPU_CODE_PATHS: [(&str, &str); 2] =
    [("MKL_CBWR", "AVX2"), ("ATEN_CPU_CAPABILITY", "avx2")];

/// The settings [`pin_cpu_code_paths`] makes: each of [`CPU_CODE_PATHS`] that `current` (the
/// environment) does not already set, when the CPU has AVX2 (`has_avx2`).
fn code_paths_to_pin(
    current: impl Fn(&str) -> Option<String>,
    has_avx2: bool,
) -> Vec<(&'static str, &'static str)> {
    if !has_avx2 {
        return Vec::new();
    }
    CPU_CODE_PATHS
        .into_iter()
        .filter(|(name, _)| current(name).is_none_or(|v| v.trim().is_empty()))
        .collect()
}

/// Pins libtorch's CPU code paths to AVX2 ([`CPU_CODE_PATHS`]) where the user has not chosen
/// them, so that a seed trains the same flows on every x86-64 machine with AVX2 (on an AMD
/// EPYC, MKL's default branch is AVX2 already; on an Intel CPU with AVX-512 it is AVX-512).
/// Call once at program start, before any thread or tensor exists. No-op off x86-64 and on
/// CPUs without AVX2. flex is not pinned: its matrix products (the `gemm` crate, without its
/// AVX-512 feature) take the AVX2/FMA path on any AVX2 CPU, but its reductions (`macerator`)
/// take AVX-512 where the CPU has it, and there is no switch.
pub fn pin_cpu_code_paths() {
    #[cfg(target_arch = "x86_64")]
    let has_avx2 = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let has_avx2 = false;
    for (name, value) in code_paths_to_pin(|name| std::env::var(name).ok(), has_avx2) {
        // Edition 2021: set_var is safe; called before any other thread reads the environment.
        std::env::set_var(name, value);
    }
}

/// The values of [`CPU_CODE_PATHS`] in this process's environment (unset ones left out), for
/// the record of what a flow was trained with.
pub fn cpu_code_paths() -> std::collections::BTreeMap<String, String> {
    CPU_CODE_PATHS
        .iter()
        .filter_map(|(name, _)| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod code_path_tests {
    use super::*;

    #[test]
    fn code_paths_are_pinned_only_where_unset_and_only_with_avx2() {
        let none = |_: &str| None;
        assert_eq!(code_paths_to_pin(none, true), CPU_CODE_PATHS.to_vec());
        assert!(code_paths_to_pin(none, false).is_empty());
        let user = |name: &str| (name == "MKL_CBWR").then(|| "COMPATIBLE".to_string());
        assert_eq!(
            code_paths_to_pin(user, true),
            vec![("ATEN_CPU_CAPABILITY", "avx2")]
        );
        let blank = |_: &str| Some(" ".to_string());
        assert_eq!(code_paths_to_pin(blank, true), CPU_CODE_PATHS.to_vec());
    }
}
