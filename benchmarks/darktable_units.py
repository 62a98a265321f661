"""How darktable's noise-profile units relate to raw variance (exposed.sensor.darktable.DARKTABLE_TO_RAW).

A synthetic Bayer DNG of flat strips with known Poisson-Gaussian noise (the Sony A7S II calibration at
ISO 3200, Sony colour matrix, neutral white balance) is rendered by darktable-cli to linear Rec.709
floats with no other processing (workflow "none"; demosaic PPG, then RCD, set by a one-entry XMP),
and measured the way darktable's profiling tool measures: the diagonal band of a one-level Haar
transform, its robust sigma (MAD / 0.6745) per strip, against the strip's mean. The green channel's
slope against the true raw gain gives the factor (the intercept is not used: darktable clips negative
values, which squeezes the noise of the darkest strips, as it did in its own profiles; strips at or
below 0.01 of white are left out of the fit). The factor depends on the demosaic: its smoothing
lowers the Haar band's variance.

Then, for the cameras both darktable and ELD calibrated, darktable's converted gain against ELD's
(an independent calibration; ELD's ISO scale is itself an assumption, K_max at ISO 6400).

    python benchmarks/darktable_units.py [--out benchmarks/results/darktable_units.json]
"""

from __future__ import annotations

import argparse
import json
import struct
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from exposed.demo import SONY_XYZ
from exposed.imaging.color import D65, Calibration
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.sensor.cameras import CAMERAS
from exposed.sensor.darktable import DARKTABLE_TO_RAW, darktable_noise, profiles_path
from exposed.sensor.noise import add_noise

DEMOSAICS = {"PPG": 0, "RCD": 5}  # darktable's dt_iop_demosaic_method_t
LEVELS = (0.0, 0.001, 0.003, 0.01, 0.02, 0.04, 0.08, 0.15, 0.25, 0.35, 0.45, 0.6)
ELD_MODELS = {"canon-eos-5d4": ("Canon", "Canon EOS 5D Mark IV"), "canon-eos-70d": ("Canon", "Canon EOS 70D"),
              "canon-eos-700d": ("Canon", "Canon EOS 700D"), "nikon-d850": ("NIKON CORPORATION", "NIKON D850"),
              "sony-a7s2": ("SONY", "ILCE-7S")}  # darktable has the A7S, not the A7S II: the same sensor


def read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        assert f.readline().strip() == b"PF"
        width, height = (int(v) for v in f.readline().split())
        scale = float(f.readline())
        data = np.fromfile(f, dtype="<f4" if scale < 0 else ">f4").reshape(height, width, 3)
    return data[::-1].astype(np.float64)


def measure(image: np.ndarray, strips: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Haar-diagonal variance (darktable's measure) of each vertical strip, (strips, 3) each."""
    width = image.shape[1] // strips
    means, variances = [], []
    for i in range(strips):
        s = image[16:-16, i * width + 16:(i + 1) * width - 16]
        s = s[: s.shape[0] // 2 * 2, : s.shape[1] // 2 * 2]
        hh = (s[0::2, 0::2] - s[0::2, 1::2] - s[1::2, 0::2] + s[1::2, 1::2]) / 4
        means.append(s.mean((0, 1)))
        variances.append((np.median(np.abs(hh), axis=(0, 1)) / 0.6745) ** 2)
    return np.array(means), np.array(variances)


def demosaic_xmp(method: int) -> str:
    """A darktable sidecar whose history sets only the demosaic method (module version 4: green_eq,
    median_thrs, color_smoothing, method, lmmse_refine, dual_thrs)."""
    params = struct.pack("<IfIIIf", 0, 0.0, 0, method, 1, 0.2).hex()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="4"
   darktable:raw_params="0" darktable:auto_presets_applied="1" darktable:history_end="1">
   <darktable:history><rdf:Seq>
    <rdf:li darktable:num="0" darktable:operation="demosaic" darktable:enabled="1" darktable:modversion="4"
     darktable:params="{params}" darktable:multi_name="" darktable:multi_priority="0"/>
   </rdf:Seq></darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/darktable_units.json"))
    args = parser.parse_args()
    if shutil.which("darktable-cli") is None:
        raise SystemExit("darktable-cli is not installed")
    noise = CAMERAS["sony-a7s2"].at_iso(3200, "pg")
    gain, read_var = (noise.K / noise.scale).item(), (noise.read_variance() / noise.scale**2).item()
    h, w = 1024, 3072
    signal = torch.tensor(LEVELS).repeat_interleave(w // len(LEVELS))[None, :].expand(h, w)
    dn = add_noise((signal * noise.scale.item())[None, None].contiguous(), noise, torch.Generator().manual_seed(0))
    mosaic = (dn[0, 0] + 512).round().clamp(0, 16383).numpy().astype(np.uint16)
    version = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    result: dict[str, object] = {"darktable": version, "true_gain": gain, "true_read_var": read_var,
                                 "factor_in_code": DARKTABLE_TO_RAW}
    keep = np.array(LEVELS) > 0.01
    with tempfile.TemporaryDirectory() as tmp:
        dng = Path(tmp) / "flat.dng"
        write_dng(dng, mosaic, DngMetadata("RGGB", np.full((2, 2), 512.0), 16383, (Calibration(D65, SONY_XYZ),),
                                           np.ones(3), exif=ExifInfo(make="SONY", model="ILCE-7S", iso=3200.0)))
        for name, method in DEMOSAICS.items():
            xmp, pfm = Path(tmp) / f"{name}.xmp", Path(tmp) / f"{name}.pfm"
            xmp.write_text(demosaic_xmp(method))
            subprocess.run(["darktable-cli", str(dng), str(xmp), str(pfm), "--icc-type", "LIN_REC709", "--core",
                            "--configdir", str(Path(tmp) / "config"), "--conf", "plugins/darkroom/workflow=none"],
                           check=True, capture_output=True)
            means, variances = measure(read_pfm(pfm), len(LEVELS))
            design = np.stack([means[keep, 1], np.ones(keep.sum())], axis=1)
            slope, _ = np.linalg.lstsq(design / variances[keep, 1:2], np.ones(keep.sum()), rcond=None)[0]
            result[name] = {"green_slope": slope, "factor": gain / slope,
                            "strips": [{"level": lv, "mean": m.tolist(), "haar_variance": v.tolist()}
                                       for lv, m, v in zip(LEVELS, means, variances)]}
            print(f"{version}, demosaic {name}: raw gain / darktable green slope = {gain / slope:.2f}")
    print(f"exposed uses {DARKTABLE_TO_RAW}")
    if profiles_path() is not None:
        rows = []
        print(f"\n{'camera':16} {'ISO':>6} {'ELD gain':>10} {'darktable':>10} {'ratio':>6}")
        for camera, (make, model) in ELD_MODELS.items():
            for iso in (400, 1600, 3200, 6400):
                dt = darktable_noise(make, model, iso)
                if dt is None:
                    continue
                eld = CAMERAS[camera].at_iso(iso, "pg")
                eld_gain = (eld.K / eld.scale).item()
                rows.append({"camera": camera, "iso": iso, "eld_gain": eld_gain, "darktable_gain": dt.gain,
                             "ratio": dt.gain / eld_gain, "profile": dt.name})
                print(f"{camera:16} {iso:>6} {eld_gain:10.3g} {dt.gain:10.3g} {dt.gain / eld_gain:6.2f}")
        result["against_eld"] = rows
        ratios = sorted(r["ratio"] for r in rows)
        print(f"darktable / ELD gain: median {ratios[len(ratios) // 2]:.2f}, from {ratios[0]:.2f} to {ratios[-1]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
