"""The project's own promises: README's commands and CI agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    """The code blocks of README's set-up section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2
    assert "exposed demo" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands()[1].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci
    assert "torch==2.13.0" in ci


def test_the_training_path_needs_neither_rawpy_nor_exifread():
    """The GPU machine's Python has torch but not rawpy or exifread: training, packs, export and
    the inference core must import without them (blocked here in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('rawpy', 'exifread'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import exposed.cli, exposed.training.train, exposed.training.pack, exposed.training.evaluate\n"
        "import exposed.denoise.infer, exposed.denoise.checkpoint\n"
        "from click.testing import CliRunner\n"
        "result = CliRunner().invoke(exposed.cli.main, ['train', '--help'])\n"
        "assert result.exit_code == 0 and '--minutes' in result.output, result.output\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr


def test_the_installed_version_is_the_packages_own():
    """pyproject.toml takes the version from exposed.__version__: what pip installed says the same."""
    from importlib import metadata

    import exposed

    assert metadata.version("exposed") == exposed.__version__
