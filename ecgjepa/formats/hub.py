"""The Hugging Face Hub: ``hf://OWNER/NAME[@revision]`` names an encoder export or an exported classifier there.

Downloads go through ``huggingface_hub.snapshot_download`` and so through its cache (``HF_HOME``), which also
honours ``HF_HUB_OFFLINE`` (only what is cached is used) and pins ``@revision`` (a branch, tag or commit).
Publishing goes through ``huggingface_hub.upload_folder``. Every failure becomes one message naming the id.
"""

from __future__ import annotations

import re
from pathlib import Path

HUB_SCHEME = "hf://"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
MARKERS = ("config.json", "predictor.json")  # an encoder export, an exported classifier


def is_hub_id(spec: str | Path) -> bool:
    return str(spec).startswith(HUB_SCHEME)


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``hf://OWNER/NAME[@revision]`` -> ``(OWNER/NAME, revision or None)``; a ValueError otherwise."""
    repo_id, _, revision = spec[len(HUB_SCHEME) :].partition("@")
    if not REPO_ID.match(repo_id) or (revision == "" and "@" in spec):
        raise ValueError(f"{spec}: expected hf://OWNER/NAME or hf://OWNER/NAME@REVISION (a branch, tag or commit)")
    return repo_id, revision or None


def hub_folder(spec: str) -> Path:
    """The local snapshot (in the Hugging Face cache) of the Hub id ``spec``, downloaded if need be."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hub_id(spec)
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, library_name="ecgjepa"))
    except RevisionNotFoundError:
        raise ValueError(f"{spec}: {repo_id} has no revision {revision!r} on the Hugging Face Hub") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ValueError(
            f"{spec}: no repository {repo_id} on the Hugging Face Hub that this machine may read (a private or "
            "gated one needs `hf auth login` or HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError:
        raise ValueError(
            f"{spec}: not in the local Hugging Face cache, and the Hub cannot be asked (HF_HUB_OFFLINE is set or "
            "there is no network); download it once online, or pass a local folder"
        ) from None
    except HfHubHTTPError as err:
        raise ValueError(f"{spec}: the Hugging Face Hub answered {err}") from None
    if not any((folder / marker).is_file() for marker in MARKERS):
        raise ValueError(
            f"{spec}: the repository holds no config.json (an ecgjepa encoder export) or predictor.json (an "
            "exported ecgjepa classifier); publish one with `ecgjepa-export … push_to_hub=OWNER/NAME`"
        )
    return folder


def local_path(spec: str | Path) -> Path:
    """``spec`` as a local path: a Hub id's snapshot folder, anything else as it is."""
    return hub_folder(str(spec)) if is_hub_id(spec) else Path(spec)


def push_folder(folder: Path, repo_id: str) -> str:
    """Upload ``folder`` to the model repository ``repo_id`` (created if missing); its URL. Without credentials or
    network this fails with a message saying which."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if not REPO_ID.match(repo_id):
        raise ValueError(f"push_to_hub={repo_id}: expected OWNER/NAME")
    api = HfApi(library_name="ecgjepa")
    try:
        if get_token() is None:
            raise LocalTokenNotFoundError(repo_id)
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="ecgjepa-export")
    except LocalTokenNotFoundError:
        raise ValueError(
            f"push_to_hub={repo_id}: no Hugging Face token; log in with `hf auth login` or set HF_TOKEN "
            f"(the folder to upload is {folder})"
        ) from None
    except HfHubHTTPError as err:
        raise ValueError(f"push_to_hub={repo_id}: the Hub refused the upload ({err}); the folder is {folder}") from None
    except Exception as err:  # the transport's own errors (requests, httpx or httpx2 by huggingface_hub version)
        reason = " ".join(str(err).split())[:300]
        raise ValueError(
            f"push_to_hub={repo_id}: the upload failed ({type(err).__name__}: {reason}); the folder to upload is "
            f"{folder}"
        ) from None
    return str(getattr(commit, "commit_url", f"https://huggingface.co/{repo_id}"))
