//! Dispatch from the run-time device choice to code generic over the dfdx device:
//! the one place that names concrete devices.

use crate::device::DeviceChoice;
use crate::nn::{self, Device};

use super::{Error, Result};

/// A computation generic over the device (closures cannot be generic; this trait is).
pub trait OnDevice {
    /// What it returns.
    type Output;
    /// Runs on `dev`.
    fn run<D: Device<f32>>(self, dev: D) -> Result<Self::Output>;
}

/// Runs `job` on the chosen device.
pub fn on_device<J: OnDevice>(device: DeviceChoice, job: J) -> Result<J::Output> {
    match device {
        DeviceChoice::Cpu => job.run(nn::cpu()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => job.run(nn::cuda(0).map_err(|e| Error::Failed(e.to_string()))?),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda => Err(Error::InvalidInput(
            DeviceChoice::Cuda
                .ensure_available()
                .expect_err("this binary has no cuda feature"),
        )),
    }
}
