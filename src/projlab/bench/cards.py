"""Accelerators' dense bf16 peaks, from the vendors' data sheets (tensor cores, no sparsity): what MFU is
read against where the card is known. The first name contained in the device's name wins, so the PCIe
and NVL parts of the H100 come before its SXM part."""
from __future__ import annotations

BF16_DENSE_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM
    "A100": 312.0,
}


def card_peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak (TFLOP/s) of a device named `device_name` (`torch.cuda.get_device_name()`); None
    when the table does not know it."""
    return next((peak for card, peak in BF16_DENSE_TFLOPS.items() if card.lower() in device_name.lower()), None)
