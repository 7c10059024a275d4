"""The planner over real folders of small CSV and Parquet files in tmp_path."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import LocalFileSystem

from sparkscore.errors import InputError, OutputError, SettingsError, UnsupportedInputError
from sparkscore.listing import InputFile, check_output_apart, list_input
from sparkscore.planner import MiniBatch, Plan, group, plan
from sparkscore.storage import resolve


def write_csv(path: Path, rows: int = 2) -> int:
    """Write a small CSV and return its size, so tests assert exact sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(rows)))
    return path.stat().st_size


def write_parquet(path: Path, rows: int = 3) -> int:
    """Write a small Parquet file and return its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"a": list(range(rows))}), path)
    return path.stat().st_size


def names_and_sizes(files: list[InputFile] | tuple[InputFile, ...]) -> list[tuple[str, int]]:
    return [(f.name, f.size) for f in files]


def test_planner_lists_folder_sorted_with_names_sizes_and_kinds(tmp_path: Path) -> None:
    b = write_csv(tmp_path / "b.csv", rows=5)
    a = write_parquet(tmp_path / "a.parquet")
    c = write_csv(tmp_path / "c.csv", rows=1)

    listing = list_input(str(tmp_path))
    fs = listing.fs
    root = listing.root
    files = listing.files
    skipped = listing.unsupported

    assert isinstance(fs, LocalFileSystem)
    assert root == str(tmp_path)
    assert names_and_sizes(files) == [("a.parquet", a), ("b.csv", b), ("c.csv", c)]
    assert [f.kind for f in files] == ["parquet", "csv", "csv"]
    assert [f.path for f in files] == [str(tmp_path / n) for n in ("a.parquet", "b.csv", "c.csv")]
    assert skipped == ()


def test_planner_skips_hidden_and_underscore_files_and_folders(tmp_path: Path) -> None:
    size = write_csv(tmp_path / "part-0.csv")
    write_csv(tmp_path / ".hidden.csv")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-0.csv.crc").write_bytes(b"\x00")
    write_csv(tmp_path / "_temporary" / "0" / "part-1.csv")
    write_csv(tmp_path / ".staging" / "part-2.csv")

    for recursive in (False, True):
        listing = list_input(str(tmp_path), recursive=recursive)
        files = listing.files
        skipped = listing.unsupported
        assert names_and_sizes(files) == [("part-0.csv", size)]
        assert skipped == ()


def test_planner_reads_nested_folders_only_with_recursive(tmp_path: Path) -> None:
    top = write_csv(tmp_path / "a.csv")
    nested = write_csv(tmp_path / "sub" / "x.csv", rows=4)
    deeper = write_parquet(tmp_path / "sub" / "deeper" / "y.pqt")

    listing = list_input(str(tmp_path))
    flat = listing.files
    listing = list_input(str(tmp_path), recursive=True)
    deep = listing.files

    assert names_and_sizes(flat) == [("a.csv", top)]
    assert names_and_sizes(deep) == [
        ("a.csv", top),
        ("sub/deeper/y.pqt", deeper),
        ("sub/x.csv", nested),
    ]
    assert deep[2].path == str(tmp_path / "sub" / "x.csv")


def test_planner_accepts_a_single_file(tmp_path: Path) -> None:
    size = write_parquet(tmp_path / "in" / "only.parquet")
    write_csv(tmp_path / "in" / "other.csv")

    listing = list_input(str(tmp_path / "in" / "only.parquet"))
    root = listing.root
    files = listing.files

    assert root == str(tmp_path / "in")
    path = str(tmp_path / "in" / "only.parquet")
    modified = os.stat(path).st_mtime_ns
    assert files == (
        InputFile(path=path, name="only.parquet", size=size, kind="parquet", modified_ns=modified),
    )


def test_planner_accepts_a_glob_relative_to_its_folder(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "in" / "a.csv")
    b = write_csv(tmp_path / "in" / "b.csv", rows=7)
    write_parquet(tmp_path / "in" / "c.parquet")
    (tmp_path / "in" / "notes.txt").write_text("not matched, so not reported")
    write_csv(tmp_path / "in" / "sub" / "d.csv")

    listing = list_input(str(tmp_path / "in" / "*.csv"))
    root = listing.root
    files = listing.files
    skipped = listing.unsupported

    assert root == str(tmp_path / "in")
    assert names_and_sizes(files) == [("a.csv", a), ("b.csv", b)]
    assert skipped == ()


def test_planner_glob_over_folders_reads_matched_folders(tmp_path: Path) -> None:
    jan = write_csv(tmp_path / "date=2024-01" / "p.csv")
    feb = write_parquet(tmp_path / "date=2024-02" / "p.parquet")
    write_csv(tmp_path / "date=2023-12" / "p.csv")

    listing = list_input(str(tmp_path / "date=2024-*"))
    files = listing.files

    assert names_and_sizes(files) == [("date=2024-01/p.csv", jan), ("date=2024-02/p.parquet", feb)]


def test_planner_accepts_file_uri(tmp_path: Path) -> None:
    size = write_csv(tmp_path / "a.csv")

    listing = list_input(tmp_path.as_uri())
    fs = listing.fs
    root = listing.root
    files = listing.files

    assert isinstance(fs, LocalFileSystem)
    assert root == str(tmp_path)
    assert names_and_sizes(files) == [("a.csv", size)]


def test_planner_resolves_relative_paths_to_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert resolve("in/data")[1] == str(tmp_path / "in" / "data")
    assert resolve("in/*.csv")[1] == str(tmp_path / "in")
    assert resolve(f"file://{tmp_path}/in/")[1] == str(tmp_path / "in")


def test_planner_rejects_an_unknown_scheme() -> None:
    with pytest.raises(InputError) as info:
        resolve("nosuch://bucket/in")

    assert info.value.path == "nosuch://bucket/in"
    assert "Check the scheme" in str(info.value)


def test_planner_recognises_pqt_and_upper_case_extensions(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.pqt")
    write_csv(tmp_path / "B.CSV")
    write_parquet(tmp_path / "c.PARQUET")

    listing = list_input(str(tmp_path))
    files = listing.files

    assert [(f.name, f.kind) for f in files] == [
        ("B.CSV", "csv"),
        ("a.pqt", "parquet"),
        ("c.PARQUET", "parquet"),
    ]


def test_planner_names_every_unsupported_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "ok.csv")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "README").write_text("x")
    write_csv(tmp_path / "sub" / "data.json")

    with pytest.raises(UnsupportedInputError) as info:
        list_input(str(tmp_path), recursive=True)

    err = info.value
    assert err.files == ["README", "notes.txt", "sub/data.json"]
    assert err.supported == [
        ".csv",
        ".parquet",
        ".pqt",
        ".png",
        ".jpg",
        ".jpeg",
        ".tiff",
        ".bmp",
        ".gif",
    ]
    assert err.path == str(tmp_path)
    assert str(err) == (
        f"{tmp_path}: 3 unsupported file(s): README, notes.txt, sub/data.json. "
        "Supported types are .csv, .parquet, .pqt, .png, .jpg, .jpeg, .tiff, .bmp, .gif; "
        "remove the others or set ignore_unsupported: true to skip them."
    )


def test_planner_ignore_unsupported_returns_skipped(tmp_path: Path) -> None:
    size = write_csv(tmp_path / "ok.csv")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "image.webp").write_bytes(b"RIFF")

    result = plan(str(tmp_path), ignore_unsupported=True)

    assert names_and_sizes(result.files) == [("ok.csv", size)]
    assert result.skipped == ("image.webp", "notes.txt")


def test_planner_reports_a_missing_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")

    for uri in (missing, missing + "/*.csv"):
        with pytest.raises(InputError) as info:
            list_input(uri)
        assert type(info.value) is InputError
        assert info.value.path == uri
        assert info.value.reason.startswith("does not exist; ")
        assert str(info.value) == f"{uri}: {info.value.reason}"


def test_planner_reports_a_folder_without_data(tmp_path: Path) -> None:
    (tmp_path / "_SUCCESS").write_text("")

    with pytest.raises(InputError) as info:
        list_input(str(tmp_path))

    assert info.value.path == str(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: there are no .csv, .parquet, .pqt, .png, .jpg, .jpeg, .tiff, .bmp or "
        ".gif files to score here."
    )


def test_planner_no_data_error_points_at_recursive_for_sub_folders(tmp_path: Path) -> None:
    write_csv(tmp_path / "sub" / "x.csv")

    with pytest.raises(InputError) as info:
        list_input(str(tmp_path))

    assert str(info.value) == (
        f"{tmp_path}: there are no .csv, .parquet, .pqt, .png, .jpg, .jpeg, .tiff, .bmp or "
        ".gif files to score here; "
        "it has sub-folders, which are read only with recursive: true."
    )


def test_planner_groups_25_files_into_10_10_5(tmp_path: Path) -> None:
    for i in range(25):
        write_csv(tmp_path / f"part-{i:02d}.csv")

    result = plan(str(tmp_path), mini_batch_size=10)

    assert [b.index for b in result.batches] == [0, 1, 2]
    assert [len(b.files) for b in result.batches] == [10, 10, 5]
    assert result.batches[0].names == tuple(f"part-{i:02d}.csv" for i in range(10))
    assert result.batches[2].names == tuple(f"part-{i:02d}.csv" for i in range(20, 25))
    assert sum(b.bytes for b in result.batches) == result.total_bytes
    assert result.total_bytes == sum(os.path.getsize(f.path) for f in result.files)


def test_planner_group_is_pure_and_rejects_a_zero_batch_size() -> None:
    files = [
        InputFile(path="/in/a.csv", name="a.csv", size=1, kind="csv"),
        InputFile(path="/in/b.csv", name="b.csv", size=2, kind="csv"),
    ]

    assert group(files, 1) == (
        MiniBatch(index=0, files=(files[0],)),
        MiniBatch(index=1, files=(files[1],)),
    )
    assert group([], 10) == ()
    with pytest.raises(SettingsError) as info:
        group(files, 0)
    assert str(info.value) == "mini_batch_size must be >= 1, got 0"


def test_planner_listing_digest_is_stable_and_tracks_sizes(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv")

    first = plan(str(tmp_path)).listing_digest
    assert plan(str(tmp_path), mini_batch_size=1).listing_digest == first
    assert len(first) == 64

    write_csv(tmp_path / "b.csv", rows=3)
    assert plan(str(tmp_path)).listing_digest != first


def test_planner_plan_survives_pickle(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    write_parquet(tmp_path / "b.pqt")
    (tmp_path / "skip.txt").write_text("x")

    original = plan(str(tmp_path), mini_batch_size=1, ignore_unsupported=True)
    copy = pickle.loads(pickle.dumps(original))

    assert isinstance(copy, Plan)
    assert copy == original
    assert copy.listing_digest == original.listing_digest


def test_planner_reads_a_root_inside_hidden_folders(tmp_path: Path) -> None:
    root = tmp_path / ".cache" / "_staging"
    size = write_csv(root / "a.csv")

    listing = list_input(str(root))
    files = listing.files

    assert names_and_sizes(files) == [("a.csv", size)]


def test_planner_auto_splits_a_large_parquet_file_at_row_groups_with_exact_first_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sparkscore.planner as planner

    table = pa.table({"a": pa.array(range(1000), pa.float64()), "b": pa.array(range(1000))})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=100)
    write_csv(tmp_path / "small.csv")
    size = (tmp_path / "big.parquet").stat().st_size
    monkeypatch.setattr(planner, "MIN_TASK_BYTES", size // 4)
    monkeypatch.setattr(planner, "MIN_FILE_BYTES", 0)  # bytes alone, at this small scale
    the_plan = plan(str(tmp_path), parallelism=1)
    slices = [f for b in the_plan.batches for f in b.files if f.name == "big.parquet"]
    assert [f.row_groups for f in slices] == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    assert [f.first_row for f in slices] == [0, 300, 600, 900]
    assert len(the_plan.files) == 2  # the listing, and its digest, are of whole files


def test_planner_auto_makes_equal_tasks_a_multiple_of_the_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sparkscore.planner as planner

    table = pa.table({"x": pa.array(range(2_000), pa.float64())})
    for i in range(16):
        pq.write_table(table, tmp_path / f"part-{i:02d}.parquet")
    monkeypatch.setattr(planner, "MIN_TASK_BYTES", 1)

    result = plan(str(tmp_path), parallelism=2)

    # 16 files of one size on 2 slots: 8 tasks of 2 files (4 full waves), in name order.
    assert [b.names for b in result.batches] == [
        (f"part-{i:02d}.parquet", f"part-{i + 1:02d}.parquet") for i in range(0, 16, 2)
    ]
    # On 3 slots: 12 tasks (4 full waves) of 1 or 2 files, every file once, in order.
    thirds = plan(str(tmp_path), parallelism=3).batches
    assert len(thirds) == 12
    assert [n for b in thirds for n in b.names] == [f"part-{i:02d}.parquet" for i in range(16)]


def test_planner_auto_packs_small_files_by_bytes_in_name_order(tmp_path: Path) -> None:
    for i in range(30):
        write_csv(tmp_path / f"f{i:02d}.csv")
    the_plan = plan(str(tmp_path), parallelism=2)
    assert [f.name for b in the_plan.batches for f in b.files] == [
        f"f{i:02d}.csv" for i in range(30)
    ]
    assert len(the_plan.batches) == 1  # 30 tiny files: one task, not 30 (nor 3 of 10)
    assert plan(str(tmp_path), mini_batch_size=10).batches[2].names[0] == "f20.csv"


def test_planner_lists_images_next_to_tables_each_by_its_kind(tmp_path: Path) -> None:
    for name in ("a.png", "b.JPG", "c.jpeg", "d.tiff", "e.bmp", "f.gif"):
        (tmp_path / name).write_bytes(b"pixels")
    write_csv(tmp_path / "g.csv")

    listing = list_input(str(tmp_path))
    files = listing.files
    skipped = listing.unsupported

    assert [(f.name, f.kind) for f in files] == [
        ("a.png", "image"),
        ("b.JPG", "image"),
        ("c.jpeg", "image"),
        ("d.tiff", "image"),
        ("e.bmp", "image"),
        ("f.gif", "image"),
        ("g.csv", "csv"),
    ]
    assert skipped == ()


def test_planner_auto_spreads_many_small_images_over_every_core(tmp_path: Path) -> None:
    for i in range(400):
        (tmp_path / f"img-{i:03d}.png").write_bytes(b"x" * 300)

    result = plan(str(tmp_path), parallelism=2)

    # Each image weighs 64 KiB at least: 25.6 MB in all, 7 tasks of 4 MiB (the least a task
    # gets), where the images' 120 KB of bytes alone would make one; 8, so that the last wave
    # fills both slots.
    assert [len(b.files) for b in result.batches] == [50] * 8
    assert result.total_bytes == 400 * 300


def test_planner_lists_each_real_file_once_through_a_symlink_cycle(tmp_path: Path) -> None:
    size = write_csv(tmp_path / "in" / "a.csv", rows=100)
    write_csv(tmp_path / "in" / "sub" / "b.csv")
    (tmp_path / "in" / "loop").symlink_to(".")
    (tmp_path / "in" / "sub" / "up").symlink_to("..")
    (tmp_path / "in" / "sub" / "again").symlink_to(tmp_path / "in" / "sub")

    listing = list_input(str(tmp_path / "in"), recursive=True)

    assert names_and_sizes(listing.files) == [("a.csv", size), ("sub/b.csv", listing.files[1].size)]
    assert listing.broken_links == ()


def test_planner_follows_a_symlinked_folder_once_preferring_real_paths(tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "z-real" / "x.csv")
    write_csv(tmp_path / "elsewhere" / "y.csv")
    (tmp_path / "in" / "a-link").symlink_to(tmp_path / "in" / "z-real")
    (tmp_path / "in" / "outside").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "in" / "x-again.csv").symlink_to(tmp_path / "in" / "z-real" / "x.csv")
    (tmp_path / "in" / "y-link.csv").symlink_to(tmp_path / "elsewhere" / "y.csv")

    deep = list_input(str(tmp_path / "in"), recursive=True)
    flat = list_input(str(tmp_path / "in"))

    assert [f.name for f in deep.files] == ["outside/y.csv", "z-real/x.csv"]
    assert [f.name for f in flat.files] == ["x-again.csv", "y-link.csv"]


def test_planner_names_a_dangling_symlink_and_skips_it(tmp_path: Path, caplog) -> None:
    write_csv(tmp_path / "in" / "a.csv")
    (tmp_path / "in" / "gone.csv").symlink_to(tmp_path / "nowhere.csv")

    with caplog.at_level("WARNING", logger="sparkscore"):
        result = plan(str(tmp_path / "in"))

    assert [f.name for f in result.files] == ["a.csv"]
    assert result.broken_links == ("gone.csv",)
    assert caplog.messages == [
        "skipped gone.csv: it is a symbolic link to a file that does not exist"
    ]

    (tmp_path / "in" / "a.csv").unlink()
    with pytest.raises(InputError) as info:
        plan(str(tmp_path / "in"))
    assert "(1 symbolic link(s) to nothing: gone.csv)" in str(info.value)


@pytest.mark.parametrize(
    "output, how",
    [
        ("p/data", "is"),
        ("p/data/", "is"),
        ("p", "contains"),
        ("p/data/sub/..", "is"),
        ("link", "is"),
        ("file://{tmp}/p", "contains"),
        ("{tmp}", "contains"),
    ],
)
def test_planner_refuses_an_output_that_is_or_contains_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, how: str
) -> None:
    write_csv(tmp_path / "p" / "data" / "a.csv")
    (tmp_path / "link").symlink_to(tmp_path / "p" / "data")
    monkeypatch.chdir(tmp_path)
    output = output.format(tmp=tmp_path)

    for given in ("p/data", "p/data/*.csv", f"file://{tmp_path}/p/data"):
        for recursive in (False, True):
            with pytest.raises(OutputError) as info:
                check_output_apart(given, output, recursive=recursive)
            assert info.value.path == output
            assert info.value.reason.startswith(f"{how} the input {given}")
            assert "nothing was touched" in info.value.reason


def test_planner_refuses_an_output_inside_the_input_only_where_listing_reaches(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_csv(data / "a.csv")
    inside = str(data / "scored")

    check_output_apart(str(data), inside, recursive=False)  # users do this: allowed
    check_output_apart(str(data), str(data / "_scored"), recursive=True)  # never listed
    check_output_apart(str(data / "*.csv"), inside, recursive=True)  # the glob stops at files
    check_output_apart(str(data / "x*" / "*.csv"), inside, recursive=False)
    for given, recursive, why in [
        (str(data), True, "recursive: true"),
        (str(data / "*"), False, "the glob '*'"),
        (str(data / "s*" / "*"), False, "the glob 's*/*'"),
        (str(data / "*.csv"), False, "the glob '*.csv'"),  # a folder named out.csv is walked
    ]:
        output = str(data / "out.csv") if given.endswith(".csv") else inside
        with pytest.raises(OutputError) as info:
            check_output_apart(given, output, recursive=recursive)
        assert str(info.value) == (
            f"{output}: lies inside the input {given}; nothing was touched, since sparkscore "
            f"never writes where it reads. Listing with {why} would read this run's output as "
            "input. Choose an output folder outside the input, or one whose name starts with "
            "'_' (never listed)."
        )


def test_planner_keeps_uri_query_options_and_does_not_take_them_for_a_glob() -> None:
    from sparkscore.storage import split_glob, split_query

    uri = "s3://bucket/in/*.csv?endpoint_override=localhost:9000&scheme=http"
    path, query = split_query(uri)
    assert (path, query) == (
        "s3://bucket/in/*.csv",
        "?endpoint_override=localhost:9000&scheme=http",
    )
    assert split_glob(path) == ("s3://bucket/in", "*.csv")
    assert split_query("s3://bucket/in/data?.csv") == ("s3://bucket/in/data?.csv", "")
    assert split_query("/local/a?b=c") == ("/local/a?b=c", "")


def test_planner_auto_spreads_a_folder_of_tiny_files_over_every_core(tmp_path: Path) -> None:
    # 400 files of 14 bytes: 5.6 KB in all, one task by bytes alone (one core idle), but each
    # file costs a fixed time to open and read, so they are shared as if each weighed
    # MIN_FILE_BYTES (6.4 MB: two tasks of at least MIN_TASK_BYTES).
    for i in range(400):
        write_csv(tmp_path / f"f{i:03d}.csv")
    the_plan = plan(str(tmp_path), parallelism=2)
    assert [len(b.files) for b in the_plan.batches] == [200, 200]
    names = [f.name for b in the_plan.batches for f in b.files]
    assert names == [f"f{i:03d}.csv" for i in range(400)]
