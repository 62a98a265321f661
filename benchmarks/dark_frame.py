"""Hold the P+G and ELD noise models against a real dark frame (Pixel 7 DNG with a NoiseProfile).

    python benchmarks/dark_frame.py [DARK.dng] [--out benchmarks/results/dark_frame.json]

Fits each model's read-noise part to the frame, then compares the frame's value distribution with
samples from exposed's own noise sampler: Kolmogorov-Smirnov distance and log-likelihood per pixel.
Also reports what the file's NoiseProfile tag implies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from exposed.sensor.calibrate import compare_to_dark_frame, fit_dark_frame
from exposed.io.exif import noise_profile, read_tags
from exposed.sensor.noise import NoiseParams
from exposed.io.raw import read_raw

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw" / "pixel7-dark-frame.dng"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dark", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dark_frame.json")
    args = parser.parse_args()

    raw = read_raw(args.dark)
    black = torch.from_numpy(raw.black)
    dark = torch.from_numpy(raw.mosaic.astype("float64")) - black.repeat(raw.mosaic.shape[0] // 2,
                                                                        raw.mosaic.shape[1] // 2)
    scale = raw.white - float(black.mean())
    fit = fit_dark_frame(dark)
    profile = noise_profile(read_tags(args.dark))

    models: dict[str, NoiseParams] = {
        "P+G (fitted Gaussian)": fit.noise_params("pg", 1.0, float(black.mean()), raw.white),
        "ELD (fitted row + Tukey-lambda + quantisation)": fit.noise_params("eld", 1.0, float(black.mean()), raw.white),
        "ELD without row noise": NoiseParams.create(K=1.0, read_sigma=fit.tukey_scale, tukey_lambda=fit.tukey_lambda,
                                                    black=float(black.mean()), white=raw.white, model="eld"),
    }
    profile_report = None
    if profile:
        read_o = sum(o for _, o in profile) / len(profile)
        models["P+G from the NoiseProfile tag"] = NoiseParams.create(
            K=1.0, read_sigma=read_o**0.5 * scale, black=float(black.mean()), white=raw.white)
        profile_report = {
            "pairs_S_O": profile,
            "read_sigma_dn_per_plane": [o**0.5 * scale for _, o in profile],
            "K_dn_per_electron_per_plane": [s * scale for s, _ in profile],
        }

    generator = torch.Generator().manual_seed(0)
    rows = {name: compare_to_dark_frame(dark, p, fit.offset, generator=generator) for name, p in models.items()}
    measured_std = [float(dark[r::2, c::2].std()) for r in range(2) for c in range(2)]

    console = Console()
    console.print(f"[bold]{args.dark.name}[/]: {raw.pattern}, black {raw.black.flatten().tolist()}, "
                  f"white {raw.white:g}, {dark.numel()} pixels")
    console.print(f"fit: offset above black {fit.offset.flatten().tolist()}, "
                  f"Gaussian sigma {fit.gaussian_sigma:.3f} DN, "
                  f"row sigma {fit.row_sigma:.3f} DN, Tukey lambda {fit.tukey_lambda:+.3f} scale {fit.tukey_scale:.3f} "
                  f"(PPCC {fit.ppcc:.5f}); measured std per cell position {[round(s, 3) for s in measured_std]}")
    if profile_report:
        per_plane = [round(s, 3) for s in profile_report['read_sigma_dn_per_plane']]
        console.print(f"NoiseProfile: read sigma per plane {per_plane} DN, "
                      f"K per plane {[round(k, 3) for k in profile_report['K_dn_per_electron_per_plane']]} DN/e-")
    table = Table(title="Dark frame against noise models (lower KS, higher log-likelihood is better)")
    table.add_column("model")
    table.add_column("KS distance", justify="right")
    table.add_column("log-lik / pixel (nats)", justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['ks']:.4f}", f"{r['loglik_per_pixel']:.4f}")
    console.print(table)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"file": args.dark.name, "fit": {"offset": fit.offset.tolist(), "gaussian_sigma": fit.gaussian_sigma,
                                              "row_sigma": fit.row_sigma, "tukey_lambda": fit.tukey_lambda,
                                              "tukey_scale": fit.tukey_scale, "ppcc": fit.ppcc},
              "measured_std_per_cell": measured_std, "noise_profile": profile_report, "models": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
