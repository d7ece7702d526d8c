"""check_params: validate every key of params.yaml before any stage runs.

Its output never changes while the params are valid, so a valid edit reruns only the
stages that read the edited keys; an invalid one stops `dvc repro` here, naming the key.
"""

from moviegenre.cli.check import check_params
from moviegenre.core import stage
from moviegenre.core.files import atomic_path
from moviegenre.core.paths import PATHS

CHECKED = PATHS.root / "data" / "params.checked"


def main() -> None:
    check_params(PATHS.params)
    with atomic_path(CHECKED) as tmp:
        tmp.write_text("params.yaml: every section and key is valid\n")


if __name__ == "__main__":
    stage.run(main)
