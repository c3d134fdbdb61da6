"""The disk buffer: exact round trips, order, atomic truncation, torn-tail recovery and real fsyncs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stress_pipeline.state import disk_buffer
from stress_pipeline.state.disk_buffer import (
    FILE_NAME,
    DiskBuffer,
    DiskBufferCorruptError,
    DiskBufferFullError,
    decode_fill,
    encode_fill,
)
from stress_pipeline.state.records import Fill, fill_from_values


def _fill(event_id: int, qty: str = "1.5", price: str = "100.12345678", fee: str = "0.0001") -> Fill:
    return Fill(
        run_id="run-buf", fill_id=f"x-{event_id}", event_id=event_id, ts_ns=1_700_000_000_000_000_000 + event_id,
        symbol="BTCUSDT", order_id=10 + event_id, qty=Decimal(qty), price=Decimal(price), fee=Decimal(fee),
    )  # fmt: skip


@pytest.fixture
def buffer_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "buffers" / "run-buf" / "redis"


def test_append_then_read_round_trips_exactly_in_order(buffer_dir: Path) -> None:
    odd = [
        _fill(0, qty="-0E-8", price="1E-8", fee="0"),
        _fill(1, qty="-99999999999.99999999", price="9999999999.99999999", fee="0.10000000"),
        Fill("run:ü", "fill \"quoted\"", 2**62, 0, "ÉTH/USDT", -1, Decimal("1.000000000"), Decimal("2"), Decimal("0")),
        fill_from_values("run-buf", 9, 3, 5, "SOLUSDT", 4, 0.1 + 0.2, 123.456789012, 0.000000015),
    ]
    buffer = DiskBuffer(buffer_dir)
    assert buffer.read() == [] and len(buffer) == 0
    buffer.append(odd[:2])
    buffer.append(odd[2:])
    buffer.append([])
    back = DiskBuffer(buffer_dir).read()
    assert back == odd
    assert [str(fill.qty) for fill in back] == [str(fill.qty) for fill in odd]  # same digits and exponent
    assert len(buffer) == 4 and len(DiskBuffer(buffer_dir)) == 4
    stats = buffer.stats()
    assert (stats.appended, stats.records, stats.torn_lines) == (4, 4, 0)
    assert stats.appended_bytes == stats.file_bytes == (buffer_dir / FILE_NAME).stat().st_size
    assert (buffer_dir / FILE_NAME).read_bytes().count(b"\n") == 4


def test_lines_are_json_with_a_checksum(buffer_dir: Path) -> None:
    line = encode_fill(_fill(7))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    parsed = json.loads(line)
    assert set(parsed) == {"crc32", "seq", "fill"} and len(parsed["crc32"]) == 8 and parsed["seq"] == 0
    assert parsed["fill"]["qty"] == "1.5" and parsed["fill"]["event_id"] == 7
    assert decode_fill(line[:-1]) == _fill(7)
    assert decode_fill(line[:-1].replace(b'"1.5"', b'"2.5"')) is None  # checksum catches a changed digit
    assert decode_fill(line[:-1].replace(b'"seq":0', b'"seq":1')) is None  # and a changed sequence number
    upper = line[:-1].replace(parsed["crc32"].encode(), parsed["crc32"].upper().encode())
    assert parsed["crc32"] == parsed["crc32"].upper() or decode_fill(upper) is None  # one spelling only


def test_truncate_all_and_truncate_flushed_prefix(buffer_dir: Path) -> None:
    buffer = DiskBuffer(buffer_dir)
    buffer.truncate()  # nothing to drop, no file made
    assert not (buffer_dir / FILE_NAME).exists()
    buffer.append([_fill(i) for i in range(5)])
    flushed = buffer.read()
    buffer.append([_fill(5), _fill(6)])  # arrives while the flushed ones were being written elsewhere
    buffer.truncate(len(flushed))
    assert buffer.read() == [_fill(5), _fill(6)] and len(buffer) == 2
    with pytest.raises(ValueError, match="cannot drop 3"):
        buffer.truncate(3)
    buffer.truncate()
    assert buffer.read() == [] and len(buffer) == 0 and buffer.stats().file_bytes == 0
    assert sorted(path.name for path in buffer_dir.iterdir()) == [FILE_NAME]  # no temporary file left
    buffer.append([_fill(7)])
    assert DiskBuffer(buffer_dir).read() == [_fill(7)]


def test_torn_last_line_is_ignored_reported_and_cut_before_the_next_append(
    buffer_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    DiskBuffer(buffer_dir).append([_fill(0), _fill(1)])
    half = encode_fill(_fill(2))[:40]
    with open(buffer_dir / FILE_NAME, "ab") as file:  # a crash in the middle of an append
        file.write(half)
    size = (buffer_dir / FILE_NAME).stat().st_size

    reader = DiskBuffer(buffer_dir)
    with caplog.at_level(logging.WARNING, logger="stress_pipeline.state.disk_buffer"):
        scan = reader.scan()
    assert scan.fills == [_fill(0), _fill(1)] and scan.torn_lines == 1 and scan.torn_bytes == len(half)
    assert "ignored a torn last line (line 3" in caplog.text
    assert reader.read() == [_fill(0), _fill(1)] and reader.stats().torn_lines == 2
    assert (buffer_dir / FILE_NAME).stat().st_size == size  # reading never changes the file

    writer = DiskBuffer(buffer_dir)
    writer.append([_fill(3)])
    assert writer.read() == [_fill(0), _fill(1), _fill(3)]
    assert writer.scan().torn_lines == 0


def test_a_complete_last_line_with_a_bad_checksum_is_a_named_error(buffer_dir: Path) -> None:
    buffer = DiskBuffer(buffer_dir)
    buffer.append([_fill(0), _fill(1)])
    path = buffer_dir / FILE_NAME
    content = path.read_bytes()
    first = content.index(b"\n") + 1
    path.write_bytes(content[:-5] + b"X" + content[-4:])  # one byte of the last, acknowledged line flipped
    for reader in (buffer, DiskBuffer(buffer_dir)):
        with pytest.raises(DiskBufferCorruptError, match="checksum mismatch") as caught:
            reader.read()
        assert (caught.value.file, caught.value.line, caught.value.offset) == (path, 2, first)
        assert f"{path}: line 2 (byte {first})" in str(caught.value)


def test_a_damaged_terminator_of_the_last_line_is_no_torn_tail(buffer_dir: Path) -> None:
    DiskBuffer(buffer_dir).append([_fill(0), _fill(1)])
    path = buffer_dir / FILE_NAME
    content = path.read_bytes()
    path.write_bytes(content[:-1] + b" ")  # the record is intact, its newline is not
    with pytest.raises(DiskBufferCorruptError, match=r"line 2 .* newline is damaged"):
        DiskBuffer(buffer_dir).read()
    path.write_bytes(content[:-1] + b"\x0b" + b'{"cr')  # ... and the torn start of a later append after it
    with pytest.raises(DiskBufferCorruptError, match=r"line 2 .* newline is damaged"):
        DiskBuffer(buffer_dir).read()
    path.write_bytes(content[:-1])  # the newline is simply missing: a write cut short, ignored
    assert DiskBuffer(buffer_dir).scan().torn_lines == 1


def test_damage_before_intact_lines_is_refused(buffer_dir: Path) -> None:
    buffer = DiskBuffer(buffer_dir)
    buffer.append([_fill(0), _fill(1), _fill(2)])
    path = buffer_dir / FILE_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1][:30] + b"\n" + lines[2])
    with pytest.raises(DiskBufferCorruptError, match=f"line 2 \\(byte {len(lines[0])}\\) is damaged"):
        buffer.read()
    with pytest.raises(DiskBufferCorruptError):
        DiskBuffer(buffer_dir).append([_fill(3)])


def test_a_missing_or_repeated_line_breaks_the_sequence(buffer_dir: Path) -> None:
    DiskBuffer(buffer_dir).append([_fill(0), _fill(1), _fill(2)])
    path = buffer_dir / FILE_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])
    with pytest.raises(DiskBufferCorruptError, match=r"line 2 .*sequence number 2, expected 1"):
        DiskBuffer(buffer_dir).read()
    path.write_bytes(lines[0] + lines[1] + lines[1] + lines[2])
    with pytest.raises(DiskBufferCorruptError, match=r"line 3 .*sequence number 1, expected 2"):
        DiskBuffer(buffer_dir).read()


def test_the_appending_object_notices_acknowledged_records_cut_away(buffer_dir: Path) -> None:
    buffer = DiskBuffer(buffer_dir)
    buffer.append([_fill(0), _fill(1)])
    buffer.append([_fill(2)])
    path = buffer_dir / FILE_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))  # a whole acknowledged line gone, at a line boundary
    with pytest.raises(DiskBufferCorruptError, match=r"holds 2 intact record.*3 .* were acknowledged"):
        buffer.read()
    with pytest.raises(DiskBufferCorruptError, match="were acknowledged"):
        list(buffer.batches(10))
    assert DiskBuffer(buffer_dir).read() == [_fill(0), _fill(1)]  # a fresh reader cannot know: a prefix


def test_the_size_cap_refuses_an_append_and_names_the_file(buffer_dir: Path) -> None:
    line = len(encode_fill(_fill(0)))
    buffer = DiskBuffer(buffer_dir, max_bytes=2 * line + 1)
    buffer.append([_fill(0)])
    with pytest.raises(DiskBufferFullError, match=f"{buffer_dir / FILE_NAME} holds {line} bytes.*cap of"):
        buffer.append([_fill(1), _fill(2)])
    assert buffer.read() == [_fill(0)] and len(buffer) == 1  # nothing of the refused batch was written
    buffer.append([_fill(1)])
    assert DiskBuffer(buffer_dir).read() == [_fill(0), _fill(1)]
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        DiskBuffer(buffer_dir, max_bytes=0)


def test_files_are_private(buffer_dir: Path) -> None:
    buffer = DiskBuffer(buffer_dir)
    buffer.append([_fill(0), _fill(1)])
    assert (buffer_dir / FILE_NAME).stat().st_mode & 0o777 == 0o600
    assert buffer_dir.stat().st_mode & 0o777 == 0o700
    buffer.truncate(1)
    assert (buffer_dir / FILE_NAME).stat().st_mode & 0o777 == 0o600


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_appends_do_not_reread_the_buffer_and_batches_stream(
    buffer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [_fill(i) for i in range(20_000)]
    DiskBuffer(buffer_dir).append(many)
    size = (buffer_dir / FILE_NAME).stat().st_size
    buffer = DiskBuffer(buffer_dir)
    assert len(buffer) == 20_000  # the one scan, on open
    before = _bytes_read()
    for i in range(200):
        buffer.append([_fill(20_000 + i)])
    assert _bytes_read() - before < size // 20  # 200 appends read (next to) nothing of the buffer
    monkeypatch.setattr(disk_buffer, "CHUNK_BYTES", 1000)  # lines cross chunk boundaries
    batches = list(buffer.batches(7_000))
    assert [len(b) for b in batches] == [7_000, 7_000, 6_200]
    assert [f.event_id for b in batches for f in b] == list(range(20_200))
    buffer.truncate(20_100)
    assert [f.event_id for f in DiskBuffer(buffer_dir).read()] == list(range(20_100, 20_200))


def test_append_fsyncs_the_file_before_returning(buffer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync
    synced: list[str] = []

    def counting_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    buffer = DiskBuffer(buffer_dir)
    buffer.append([_fill(0), _fill(1)])
    path = str(buffer_dir / FILE_NAME)
    assert synced == [path, str(buffer_dir)]  # the file, then the directory holding the new file
    buffer.append([_fill(2)])
    assert synced[2:] == [path]  # one fsync per append batch
    buffer.truncate(1)
    assert synced[3:] == [str(buffer_dir / f".{FILE_NAME}.tmp"), str(buffer_dir)]
    assert buffer.stats().fsyncs == 5

    # Another process, reading the file from disk, sees exactly what was appended.
    code = (
        "import sys; from stress_pipeline.state.disk_buffer import DiskBuffer; "
        "print(','.join(str(fill.event_id) for fill in DiskBuffer(sys.argv[1]).read()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(buffer_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1,2"


def test_a_killed_writer_loses_only_the_unfinished_append(buffer_dir: Path) -> None:
    code = (
        "import os, sys\n"
        "from decimal import Decimal\n"
        "from stress_pipeline.state.disk_buffer import DiskBuffer, encode_fill\n"
        "from stress_pipeline.state.records import Fill\n"
        "fills = [Fill('r', str(i), i, i, 'S', i, Decimal('1'), Decimal('2'), Decimal('0')) for i in range(3)]\n"
        "buffer = DiskBuffer(sys.argv[1])\n"
        "buffer.append(fills[:2])\n"
        "fd = os.open(buffer.file, os.O_WRONLY | os.O_APPEND)\n"
        "os.write(fd, encode_fill(fills[2])[:25])\n"
        "os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(buffer_dir)], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    scan = DiskBuffer(buffer_dir).scan()
    assert [fill.event_id for fill in scan.fills] == [0, 1] and scan.torn_lines == 1


_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12)
_fills = st.builds(
    Fill,
    run_id=st.text(min_size=1, max_size=12),
    fill_id=st.text(max_size=12),
    event_id=st.integers(min_value=0, max_value=2**63),
    ts_ns=st.integers(min_value=0, max_value=2**63),
    symbol=st.text(min_size=1, max_size=10),
    order_id=st.integers(min_value=-1, max_value=2**40),
    qty=_decimals,
    price=_decimals,
    fee=_decimals,
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_fills, max_size=8), min_size=1, max_size=5), drop=st.integers(0, 40))
def test_any_fills_round_trip_through_append_and_truncate(tmp_path_factory, batches, drop: int) -> None:
    directory = tmp_path_factory.mktemp("buffer")
    buffer = DiskBuffer(directory)
    for batch in batches:
        buffer.append(batch)
    everything = [fill for batch in batches for fill in batch]
    assert DiskBuffer(directory).read() == everything
    assert [tuple(map(str, (f.qty, f.price, f.fee))) for f in DiskBuffer(directory).read()] == [
        tuple(map(str, (f.qty, f.price, f.fee))) for f in everything
    ]
    drop = min(drop, len(everything))
    buffer.truncate(drop)
    assert DiskBuffer(directory).read() == everything[drop:] and len(buffer) == len(everything) - drop


_damage = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    ),
    min_size=1,
    max_size=4,
)


def _damaged(content: bytes, damage: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(content)
    for kind, where, xor in damage:
        if not data:
            break
        position = int(where * len(data))
        if kind == "flip":
            data[position] ^= xor
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.lists(_fills, min_size=1, max_size=4), min_size=1, max_size=4),
    damage=_damage,
    torn=st.integers(0, 60),
)
@example(batches=[[_fill(0)]], damage=[("flip", 0.9999, 1)], torn=1)  # the newline flipped, a fragment glued on
def test_every_acknowledged_fill_replays_or_the_read_raises(tmp_path_factory, batches, damage, torn: int) -> None:
    """Random byte flips and truncations of acknowledged records (after, perhaps, a crash in a later
    append left ``torn`` bytes of it): whoever reads gets every acknowledged fill back, in order, or a
    DiskBufferCorruptError; nothing acknowledged vanishes silently and nothing is invented. A fresh
    reader (after a crash) cannot tell a file cut at a line boundary from a shorter one, so under
    truncation it may see a prefix; the object that acknowledged the appends cannot be fooled."""
    directory = tmp_path_factory.mktemp("damaged")
    owner = DiskBuffer(directory)
    for batch in batches:
        owner.append(batch)
    acknowledged = [fill for batch in batches for fill in batch]
    path = directory / FILE_NAME
    clean = path.read_bytes()
    fragment = encode_fill(_fill(99), seq=len(acknowledged))[: min(torn, len(encode_fill(_fill(99))) - 1)]
    path.write_bytes(_damaged(clean, damage) + fragment)

    try:
        assert owner.read() == acknowledged
    except DiskBufferCorruptError as err:
        assert err.file == path and err.line >= 1 and err.offset >= 0
    try:
        seen = DiskBuffer(directory).read()
    except DiskBufferCorruptError:
        return
    cut = any(kind == "truncate" for kind, _, _ in damage)
    single_flip = len(damage) == 1 and not cut
    if single_flip:
        assert seen == acknowledged
    assert seen == acknowledged[: len(seen)]  # a prefix at worst: never reordered, never invented


def test_the_folders_it_creates_above_a_buffer_are_private_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # a folder that exists keeps its mode
    buffer_dir = home / "buffers" / "run-1" / "redis"
    DiskBuffer(buffer_dir).append([_fill(0)])
    for folder in (home / "buffers", home / "buffers" / "run-1", buffer_dir):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert home.stat().st_mode & 0o777 == 0o755
