"""The README and docs/ checked against the code, so the docs cannot drift from it.

Every ```python block runs (the ```text block right after it is what it must print), the
settings reference matches `Settings` field for field, every `--set key=value` names a real
setting, links lead somewhere, the architecture page has a row for every module, and its import
rules are the contracts `make lint` checks.
The conventions are in docs/index.md ("Examples in these pages").
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import re
import shutil
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkscore import azureconfig
from sparkscore.errors import SettingsError
from sparkscore.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
EXAMPLE = Path("sparkscore/examples/diabetes")  # relative: examples name it from the repo root
NOT_RUN = "# not run:"
MAX_NOT_RUN = 2  # running the examples is the point; each exception must earn its place
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    output: str | None = None  # the ```text block right after a python block: what it prints

    @property
    def name(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason given on the first line, when the block is not to be run."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        return first[len(NOT_RUN) :].strip() if first.startswith(NOT_RUN) else None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each python block paired with the text block after it."""
    found: list[Block] = []
    follows_python = False  # only blank lines since a python block closed
    lines = page.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            follows_python = follows_python and not lines[i].strip()
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        assert j < len(lines), f"{page.name}:{i + 1}: a code block is never closed"
        code = "\n".join(body) + "\n"
        lang = opening["lang"]
        if lang == "text" and follows_python:
            found[-1] = dataclasses.replace(found[-1], output=code)
        else:
            found.append(Block(page, i + 1, lang, code))
        follows_python = lang == "python"
        i = j + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON = [block for block in ALL_BLOCKS if block.lang == "python"]
RUNNABLE = [block for block in PYTHON if block.not_run is None]


def prose(page: Path) -> str:
    """The page without its code blocks: where links and headings are."""
    kept, inside = [], None
    for line in page.read_text(encoding="utf-8").split("\n"):
        opening = FENCE.match(line)
        if inside is None and opening:
            inside = opening["fence"]
        elif inside is not None and line.strip() == inside:
            inside = None
        elif inside is None:
            kept.append(line)
    return "\n".join(kept)


def table(page: Path, header: str) -> list[list[str]]:
    """The rows of the table whose header row starts with `header`, split into cells."""
    lines = page.read_text(encoding="utf-8").split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert len(starts) == 1, f"{page.name}: one table with the header {header!r}"
    start = starts[0]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- the settings reference -----------------------------------------------------------------

SETTINGS_PAGE = DOCS / "settings.md"
FIELDS = {item.name: item for item in dataclasses.fields(Settings)}
HINTS = typing.get_type_hints(Settings)


def settings_rows() -> dict[str, list[str]]:
    rows = table(SETTINGS_PAGE, "| setting | default | allowed | meaning |")
    names = [code_spans(row[0])[0] for row in rows]
    assert len(names) == len(set(names)), f"a setting is documented twice: {names}"
    assert all(len(row) == 4 for row in rows), "every row has setting, default, allowed, meaning"
    return dict(zip(names, rows))


def accepts(name: str, value: Any) -> bool:
    try:
        Settings(**{name: value})
    except SettingsError:
        return False
    return True


def test_settings_page_documents_every_field_and_nothing_else() -> None:
    """A field added, renamed or removed in settings.py must be written down the same way."""
    assert sorted(settings_rows()) == sorted(FIELDS)


def test_settings_page_gives_each_default_as_the_code_has_it() -> None:
    """The default column is YAML, as in conf/default.yaml, and equals the dataclass default."""
    defaults = Settings().to_dict()
    for name, row in settings_rows().items():
        spans = code_spans(row[1])
        assert len(spans) == 1 and row[1] == f"`{spans[0]}`", f"{name}: default is one `value`"
        assert yaml.safe_load(spans[0]) == defaults[name], f"{name}: default {row[1]}"


def test_settings_page_lists_the_allowed_values_the_code_accepts() -> None:
    """Choices are listed exactly; every example accepted; every bound is where the check is."""
    for name, row in settings_rows().items():
        allowed, hint = row[2], HINTS[name]
        spans = [yaml.safe_load(span) for span in code_spans(allowed)]
        if typing.get_origin(hint) is typing.Literal:
            assert sorted(spans) == sorted(typing.get_args(hint)), f"{name}: choices {allowed}"
        elif hint is bool:
            assert sorted(spans) == [False, True], f"{name}: a flag is `true`, `false`"
        for value in spans:
            assert accepts(name, value), f"{name}: {value!r} is listed as allowed but refused"
        for op, bound in re.findall(r"(>=|>) (-?\d+)", allowed):
            lowest = int(bound) if op == ">=" else int(bound) + 1
            assert accepts(name, lowest) and not accepts(name, lowest - 1), f"{name}: {op} {bound}"


def set_overrides() -> list[tuple[str, str]]:
    """Every `--set key=value` of every page, in prose and code blocks alike.

    Not in what an example prints: that is checked by running it, and may show a refused value.
    """
    found = []
    for page in PAGES:
        texts = [prose(page), *(block.code for block in blocks(page))]
        for token in re.findall(r"--set\s+([^\s`'\"\\)]+)", "\n".join(texts)):
            if token != "key=value" and not token.startswith("..."):  # a usage line's placeholders
                found.append((page.name, token))
    return found


def test_every_set_in_the_docs_names_a_real_setting_with_a_valid_value() -> None:
    overrides = set_overrides()
    assert len(overrides) >= 5, "the pages show --set; the pattern must still find them"
    for page, token in overrides:
        try:
            Settings.load(overrides=[token])
        except SettingsError as error:
            pytest.fail(f"{page}: --set {token}: {error}")


def test_every_setting_written_as_code_has_a_valid_value() -> None:
    """`bad_rows: skip` in prose and ```yaml blocks are settings a reader will copy."""
    checked = 0
    for page in PAGES:
        for key, value in re.findall(r"`(\w+): ([^`\n]+)`", prose(page)):
            if key in FIELDS:
                checked += 1
                try:
                    Settings.load(overrides=[f"{key}={value}"])
                except SettingsError as error:
                    pytest.fail(f"{page.name}: `{key}: {value}`: {error}")
    for block in ALL_BLOCKS:
        if block.lang == "yaml":
            checked += 1
            doc = yaml.safe_load(block.code)
            if azureconfig.is_deployment(doc):  # Azure's deployment file, read as --config does
                doc = azureconfig.read_deployment(doc, str(ROOT)).settings
            Settings.from_mapping(doc, source=block.name)
    assert checked >= 10, "the pages write settings as code; the pattern must still find them"


# --- the examples ---------------------------------------------------------------------------


@contextlib.contextmanager
def jvm_working_directory(spark: Any, folder: Path) -> Iterator[None]:
    """Resolve Spark's relative paths (spark.read.csv("digits/")) in `folder`, as Python does.

    The JVM fixed its working directory when the session started; the local filesystem's own
    working directory is what Spark resolves relative paths against, and it can move."""
    jvm = spark.sparkContext._jvm
    local = jvm.org.apache.hadoop.fs.FileSystem.getLocal(
        spark.sparkContext._jsc.hadoopConfiguration()
    )
    before = local.getWorkingDirectory()
    local.setWorkingDirectory(jvm.org.apache.hadoop.fs.Path(str(folder)))
    try:
        yield
    finally:
        local.setWorkingDirectory(before)


def workspace(block: Block, folder: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """What a block may use: the example files at their relative path, spark, a digit model."""
    shutil.copytree(ROOT / EXAMPLE, folder / EXAMPLE)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    if re.search(r"\bspark\b", block.code):
        namespace["spark"] = request.getfixturevalue("spark")
    if "digit_model" in block.code or "digits/" in block.code:
        from model_zoo import digit_images, write_pngs

        shutil.copytree(request.getfixturevalue("zoo").digit_labels, folder / "digit_model")
        write_pngs(folder / "digits", digit_images(12))
    return namespace


def tidy(text: str) -> str:
    """Output as compared: trailing spaces and blank lines at either end do not count."""
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")) + "\n"


def printed_as_shown(got: str, want: str) -> bool:
    """Line by line; `...` stands for text that varies between runs (doctest's ELLIPSIS)."""
    return doctest.OutputChecker().check_output(tidy(want), tidy(got), doctest.ELLIPSIS)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.name)
def test_python_example_runs_and_prints_what_the_page_shows(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    namespace = workspace(block, tmp_path, request)
    monkeypatch.chdir(tmp_path)
    code = compile(block.code, block.name, "exec")
    spark = namespace.get("spark")
    with jvm_working_directory(spark, tmp_path) if spark else contextlib.nullcontext():
        exec(code, namespace)
    got = capsys.readouterr().out
    if block.output is None:
        return
    assert re.sub(r"\.\.\.|\s", "", block.output), f"{block.name}: shows only '...'"
    if "..." in block.output:
        assert printed_as_shown(got, block.output), f"{block.name} printed:\n{got}"
    else:
        assert tidy(got) == tidy(block.output), f"{block.name} printed something else"


def test_examples_that_do_not_run_say_why_compile_and_stay_few() -> None:
    not_run = [block for block in PYTHON if block.not_run is not None]
    for block in not_run:
        assert block.not_run, f"{block.name}: say why after '{NOT_RUN}'"
        compile(block.code, block.name, "exec")
    assert len(not_run) <= MAX_NOT_RUN, [block.name for block in not_run]


def test_readme_quickstarts_run_and_show_their_whole_output() -> None:
    """A new user copies these first: each runs, and what it prints is on the page in full."""
    quickstarts = [block for block in PYTHON if block.page == README]
    assert len(quickstarts) >= 3
    for block in quickstarts:
        assert block.not_run is None, f"{block.name}: a quickstart must run"
        assert block.output, f"{block.name}: show what it prints in a ```text block after it"
        assert "..." not in block.output, f"{block.name}: show the output in full"


def test_blocks_are_parsed_with_their_output(tmp_path: Path) -> None:
    """The runner itself: a python block owns the text block after it, and only that one."""
    page = tmp_path / "page.md"
    page.write_text(
        "\n".join(
            [
                "```python",
                "print(1)",
                "```",
                "",
                "```text",
                "1",
                "```",
                "between",
                "```text",
                "alone",
                "```",
                "- item:",
                "  ```python",
                "  # not run: needs S3",
                "  x = 1",
                "  ```",
            ]
        ),
        encoding="utf-8",
    )
    parsed = blocks(page)
    assert [(b.lang, b.output, b.not_run) for b in parsed] == [
        ("python", "1\n", None),
        ("text", None, None),
        ("python", None, "needs S3"),
    ]
    assert parsed[2].code == "# not run: needs S3\nx = 1\n"
    assert printed_as_shown("1  \n2\n", "1\n2\n")
    assert printed_as_shown("took 5.771s\n", "took ...s\n")
    assert not printed_as_shown("1\n2\n", "1\n3\n")


# --- links and pages ------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page).split("\n") if line.startswith("#")}


def links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", prose(page))


def test_links_lead_to_a_file_and_heading_that_exist() -> None:
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: link to {target}: no such file"
            if anchor:
                assert anchor in anchors(linked), f"{page.name}: link to {target}: no such heading"


def test_every_docs_page_is_linked_from_the_readme_and_the_index() -> None:
    pages = {path.name for path in DOCS.glob("*.md")}
    from_readme = {Path(t.partition("#")[0]).name for t in links(README) if t.startswith("docs/")}
    from_index = {Path(t.partition("#")[0]).name for t in links(DOCS / "index.md")}
    assert pages <= from_readme
    assert pages - {"index.md"} <= from_index


# --- the architecture page ------------------------------------------------------------------

ARCHITECTURE = DOCS / "architecture.md"


def module_rows() -> dict[str, str]:
    """Each module path of the table, and its layer."""
    rows = table(ARCHITECTURE, "| module | layer | what it owns |")
    assert all(len(row) == 3 for row in rows), "every row has module, layer, what it owns"
    return {code_spans(row[0])[0]: row[1] for row in rows}


def test_module_table_has_one_row_per_module_and_only_modules_that_exist() -> None:
    """After a module is added, split or renamed, the table is updated with it."""
    rows = module_rows()
    modules = {f"sparkscore/{path.name}" for path in (ROOT / "sparkscore").glob("*.py")}
    assert modules <= set(rows), f"not in docs/architecture.md: {sorted(modules - set(rows))}"
    gone = [path for path in rows if not (ROOT / path).exists()]
    assert not gone, f"docs/architecture.md names modules that are gone: {gone}"


def contracts() -> dict[str, dict[str, Any]]:
    """import-linter's contracts in pyproject.toml, by name: what `make lint` holds the code to."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {contract["name"]: contract for contract in config["tool"]["importlinter"]["contracts"]}


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_rule_the_pure_core_knows_no_spark_names_the_modules_the_table_does() -> None:
    """The core, storage and planner layers and the rows marked no Spark: the contract's list."""
    no_spark = {
        module_name(path)
        for path, layer in module_rows().items()
        if layer in ("core", "storage", "planner") or layer.endswith(", no Spark")
    }
    contract = contracts()["The pure core knows no Spark"]
    assert contract["forbidden_modules"] == ["pyspark"]
    assert "sparkscore.scoring" in no_spark
    assert sorted(contract["source_modules"]) == sorted(no_spark)


def test_rule_nothing_imports_the_face_is_a_contract() -> None:
    contract = contracts()["Nothing imports the face"]
    assert contract["source_modules"] == ["sparkscore.*"]
    assert contract["forbidden_modules"] == ["sparkscore.cli"]


def test_rule_tasks_do_not_import_the_driver_is_a_contract() -> None:
    contract = contracts()["Tasks do not import the driver"]
    assert contract["source_modules"] == ["sparkscore.tasks"]
    assert {"sparkscore.job", "sparkscore.preparation"} <= set(contract["forbidden_modules"])
