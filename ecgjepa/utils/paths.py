"""Where the configs and the default data live, for a checkout, an editable or a wheel install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def conf_dir() -> Path:
    """The Hydra config folder: the wheel's ``ecgjepa/conf`` if present, else the checkout's ``conf/``."""
    packaged = PACKAGE_DIR / "conf"
    if packaged.is_dir():
        return packaged
    checkout = PACKAGE_DIR.parent / "conf"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no Hydra config folder found at {packaged} or {checkout}")


def bundled_sample_dir() -> Path:
    """The bundled PTB-XL sample's raw records: the wheel's ``ecgjepa/sample_data/ptbxl``, else the checkout's."""
    packaged = PACKAGE_DIR / "sample_data" / "ptbxl"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "sample_data" / "ptbxl"


def project_root() -> Path:
    """The checkout root when running from one (editable install), else the current directory."""
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return PACKAGE_DIR.parent
    return Path(os.getcwd())


def wandb_offline() -> bool:
    """Log to W&B offline when asked to (WANDB_MODE) or when no API key is configured."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def register_resolvers() -> None:
    """``${ecgjepa_root:}``, ``${interactive:}`` (stderr is a terminal), ``${eval_patience:steps,every}``,
    ``${file_stem:path}`` (a file's name without folder and suffix)."""
    if not OmegaConf.has_resolver("ecgjepa_root"):
        OmegaConf.register_new_resolver("ecgjepa_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("interactive"):
        # Progress bars only for a person at a terminal; CI logs and batch jobs stay quiet.
        OmegaConf.register_new_resolver("interactive", lambda: sys.stderr.isatty())
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("eval_patience"):
        OmegaConf.register_new_resolver("eval_patience", lambda steps, interval: max(1, int(steps) // int(interval)))
    if not OmegaConf.has_resolver("scale_lr"):
        # A learning rate given per `reference` samples, scaled linearly to the samples of one optimiser step
        # (global batch x accumulated micro-batches): ${scale_lr:1.5e-4,${data.global_batch_size},${trainer...},256}.
        OmegaConf.register_new_resolver(
            "scale_lr",
            lambda base, batch, accumulate, reference: float(base) * int(batch) * int(accumulate) / int(reference),
        )
    if not OmegaConf.has_resolver("file_stem"):
        OmegaConf.register_new_resolver("file_stem", lambda path: Path(str(path)).stem)
