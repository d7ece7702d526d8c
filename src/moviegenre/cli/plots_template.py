"""The HTML template of `dvc plots show`, with Vega, Vega-Lite and vega-embed inlined.

DVC's own page loads those three scripts from a CDN, so with no network its Vega charts stay
blank. DVC takes a template instead (``plots.html_template`` in ``.dvc/config``): this one
carries the scripts themselves, read from the npm packages ``make install`` puts in
``node_modules/`` (``package-lock.json`` pins them), so the page renders offline and wherever
it is written (``dvc plots show -o DIR``). The template is built, never committed: the
scripts are third-party code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path

log = logging.getLogger(__name__)

# npm package -> its browser build (UMD: defines the globals vegaEmbed needs), in load order
SCRIPTS = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}

PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>moviegenre plots</title>
{inline_scripts}
    <style>
        body { font-family: system-ui, sans-serif; margin: 1.5em; }
        table { border-spacing: 15px; }
        img { max-width: 100%; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _script(package_dir: Path, build: str) -> str:
    path = package_dir / build
    try:
        version = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
        code = path.read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError) as exc:
        raise MovieGenreError(f"{path}: cannot read it ({exc}); run `npm ci` (or `make install`)") from exc
    # inside <script>, "</script" would end the element early: the escaped form means the same to JavaScript
    code = code.replace("</script", "<\\/script")
    return f"    <script>/* {package_dir.name} {version} */\n{code}\n    </script>"


def render(node_modules: Path) -> str:
    """The template's text, with DVC's two placeholders (``{plot_divs}``, ``{refresh_tag}``)."""
    scripts = "\n".join(_script(node_modules / name, build) for name, build in SCRIPTS.items())
    # DVC fills "{plot_divs}", "{refresh_tag}" and "{scripts}" by plain replacement, anywhere in the
    # page: the page has the first two and no "{scripts}" (the CDN's script tags), the scripts none
    for placeholder in PLACEHOLDERS:
        if placeholder in scripts:
            raise MovieGenreError(f"{node_modules}: a script contains DVC's placeholder {placeholder}")
    return PAGE.replace("{inline_scripts}", scripts)


def write_template(node_modules: Path, out: Path) -> Path:
    """Write the template to ``out`` (atomically) and return it."""
    text = render(node_modules)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("%s: dvc plots template with %s inlined", out, ", ".join(SCRIPTS))
    return out
