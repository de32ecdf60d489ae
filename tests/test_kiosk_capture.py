"""Frame sources and the capture thread: real videos and folders, fakes for live behaviour."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from facelib.images import read_rgb
from facelib.types import RGBImage
from kiosk_app.capture import CaptureThread, CaptureTimeout
from kiosk_app.frames import Frame
from kiosk_app.sources import (
    FOLDER_FPS,
    FrameSource,
    ImageFolderSource,
    OpenCVSource,
    SourceError,
    SourceLost,
    mask_url,
    open_source,
    opened,
)
from tests.conftest import require

SHORT_CLIP = "face_recognition_short_hamilton_clip.mp4"  # 640x360, 275 frames
HD_CLIP = "facenet-pytorch_video.mp4"  # 1920x1080, 105 frames
TINY_CLIP = "face-api-js_test_video.mp4"  # 820x460, 5 frames


def _video(data_dir: Path, name: str) -> Path:
    return require(data_dir / "video" / name)


def _reference_frames(path: Path, count: int) -> list[RGBImage]:
    """The first `count` frames as OpenCV decodes them, converted to RGB by hand."""
    capture = cv2.VideoCapture(str(path))
    frames: list[RGBImage] = []
    for _ in range(count):
        ok, bgr = capture.read()
        assert ok
        frames.append(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8))
    capture.release()
    return frames


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


# ---- video files -------------------------------------------------------------------------------


def test_video_file_delivers_every_frame_in_order_as_rgb(data_dir: Path) -> None:
    path = _video(data_dir, SHORT_CLIP)
    expected = _frame_count(path)
    reference = _reference_frames(path, 2)
    source = open_source(str(path))
    assert isinstance(source, OpenCVSource) and not source.live
    assert source.name == str(path)

    with CaptureThread(source, queue_size=2) as capture:
        assert not capture.drop_when_full
        frames = list(capture)
        assert capture.get() is None  # stays ended
        assert capture.get(timeout=0.01) is None

    assert abs(len(frames) - expected) <= 1, (len(frames), expected)
    assert [f.index for f in frames] == list(range(len(frames)))
    stamps = [f.timestamp for f in frames]
    assert stamps[0] == pytest.approx(0.0, abs=1e-6)
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[-1] == pytest.approx((len(frames) - 1) / 29.97, abs=0.05)
    first = frames[0].image
    assert first.shape == (360, 640, 3) and first.dtype == np.uint8
    assert first.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(first, reference[0])
    np.testing.assert_array_equal(frames[1].image, reference[1])
    # RGB, not BGR: the clip's channels differ, so swapping them would not match.
    assert not np.array_equal(first, reference[0][:, :, ::-1])

    stats = capture.stats
    assert stats.captured == stats.delivered == len(frames)
    assert stats.dropped == stats.errors == stats.reconnects == stats.queued == 0
    assert not capture.alive


def test_video_file_resize_and_clean_end(data_dir: Path) -> None:
    path = _video(data_dir, HD_CLIP)
    reference = _reference_frames(path, 1)[0]
    with opened(open_source(path, resize=(640, 480))) as source:
        frame = source.read()
        assert frame is not None
        assert frame.image.shape == (480, 640, 3)
        assert frame.image.flags["C_CONTIGUOUS"]
        assert (frame.width, frame.height) == (640, 480)
        expected = cv2.resize(reference, (640, 480), interpolation=cv2.INTER_AREA)
        assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1

    tiny = _video(data_dir, TINY_CLIP)
    with opened(open_source(str(tiny))) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.read() is None  # the end stays the end
    assert len(frames) == _frame_count(tiny)
    assert [f.timestamp for f in frames] == pytest.approx(
        [i / 23.976 for i in range(len(frames))], abs=1e-3
    )


def test_video_file_reopens_from_the_start(data_dir: Path) -> None:
    source = open_source(_video(data_dir, TINY_CLIP))
    source.open()
    assert source.read() is not None
    source.open()
    again = source.read()
    source.close()
    source.close()  # idempotent
    assert again is not None and again.index == 0 and again.timestamp == 0.0


# ---- image folders -----------------------------------------------------------------------------


def test_image_folder_source(data_dir: Path) -> None:
    folder = require(data_dir / "group")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not images:
        pytest.skip(f"no images in {folder}")
    source = open_source(str(folder))
    assert isinstance(source, ImageFolderSource) and not source.live
    with CaptureThread(source) as capture:
        frames = list(capture)
    assert len(frames) == len(images)
    assert [f.index for f in frames] == list(range(len(images)))
    assert [f.timestamp for f in frames] == pytest.approx(
        [i / FOLDER_FPS for i in range(len(images))]
    )
    np.testing.assert_array_equal(frames[0].image, read_rgb(images[0]))
    assert all(f.image.flags["C_CONTIGUOUS"] and f.image.ndim == 3 for f in frames)

    with opened(open_source(folder, resize=(320, 240))) as small:
        frame = small.read()
        assert frame is not None and frame.image.shape == (240, 320, 3)


def test_image_folder_skips_unreadable_images_and_single_image_file(
    data_dir: Path, tmp_path: Path
) -> None:
    image = require(data_dir / "group" / "face_recognition_two_people.jpg")
    (tmp_path / "a.jpg").write_bytes(image.read_bytes())
    (tmp_path / "b.png").write_bytes(b"not an image")
    (tmp_path / "c.JPG").write_bytes(image.read_bytes())
    (tmp_path / "notes.txt").write_text("ignored")
    with opened(open_source(tmp_path)) as source:
        frames = [source.read(), source.read(), source.read()]
    assert [f is not None for f in frames] == [True, True, False]
    assert [f.index for f in frames if f is not None] == [0, 1]

    with opened(open_source(str(image))) as single:
        first = single.read()
        assert first is not None and single.read() is None
    np.testing.assert_array_equal(first.image, read_rgb(image))


# ---- fakes for live behaviour ------------------------------------------------------------------


class FakeLiveSource:
    """A camera that opens as `opens` says (True = works), and after `lose_after[k]` frames
    of its k-th session raises SourceLost. After `limit` frames in all it blocks in read()
    until `released` is set, then raises SourceLost."""

    live = True

    def __init__(
        self,
        *,
        opens: list[bool] | None = None,
        lose_after: list[int] | None = None,
        limit: int = 1_000_000,
        frame_interval_s: float = 0.0,
    ) -> None:
        self.name = "fake camera"
        self.opens = list(opens or [])
        self.lose_after = list(lose_after or [])
        self.limit = limit
        self.frame_interval_s = frame_interval_s
        self.released = threading.Event()
        self.open_calls = 0
        self.close_calls = 0
        self.produced = 0
        self._session_left: int | None = None
        self._open = False

    def open(self) -> None:
        self.open_calls += 1
        if self.opens and not self.opens.pop(0):
            raise SourceError(f"cannot open {self.name}: unplugged")
        self._open = True
        self._session_left = self.lose_after.pop(0) if self.lose_after else None

    def read(self) -> Frame | None:
        assert self._open, "read() on a closed source"
        if self.produced >= self.limit:
            self.released.wait(10)
            raise SourceLost(f"{self.name} released")
        if self._session_left == 0:
            raise SourceLost(f"{self.name} unplugged")
        if self._session_left is not None:
            self._session_left -= 1
        if self.frame_interval_s:
            time.sleep(self.frame_interval_s)
        index = self.produced
        self.produced += 1
        image = np.full((4, 4, 3), index % 256, dtype=np.uint8)
        return Frame(index=index, timestamp=time.monotonic(), image=image)

    def close(self) -> None:
        self.close_calls += 1
        self._open = False


def _stop_blocked(capture: CaptureThread, source: FakeLiveSource) -> None:
    """Stop a capture whose fake source is blocked in read(): release it just after stop()."""
    threading.Timer(0.05, source.released.set).start()
    started = time.monotonic()
    capture.stop()
    assert time.monotonic() - started < 2.0
    assert not capture.alive


def test_fake_source_satisfies_the_protocol() -> None:
    assert isinstance(FakeLiveSource(), FrameSource)


def test_live_source_drops_oldest_frames_for_a_slow_consumer() -> None:
    total = 120
    source = FakeLiveSource(limit=total, frame_interval_s=0.001)
    capture = CaptureThread(source, queue_size=4)
    assert capture.drop_when_full
    delivered: list[Frame] = []
    capture.start()
    try:
        while not delivered or delivered[-1].index < total - 1:
            frame = capture.get(timeout=5)
            assert frame is not None
            delivered.append(frame)
            stats = capture.stats
            assert stats.captured == stats.dropped + stats.delivered + stats.queued
            time.sleep(0.015)  # a slow consumer
        stats = capture.stats
    finally:
        _stop_blocked(capture, source)

    indices = [f.index for f in delivered]
    assert indices == sorted(set(indices))  # in order, no repeats
    assert indices[-1] == total - 1  # the newest frame reached the consumer
    assert stats.captured == total
    assert stats.dropped > 0
    assert stats.captured == stats.dropped + stats.delivered + stats.queued
    assert stats.delivered == len(delivered) and stats.queued == 0
    assert stats.reconnects == stats.errors == 0
    # Once the source stalls, the frames the consumer still gets are the last ones queued.
    assert indices[-4:] == list(range(total - 4, total))


def test_live_source_reconnects_with_doubling_backoff() -> None:
    sleeps: list[float] = []
    source = FakeLiveSource(opens=[True, False, False, True], lose_after=[5], limit=10)
    capture = CaptureThread(source, queue_size=32, sleep=sleeps.append)
    with capture_logs() as logs:
        capture.start()
        try:
            frames = [capture.get(timeout=5) for _ in range(10)]
            stats = capture.stats
        finally:
            _stop_blocked(capture, source)

    assert [f.index for f in frames if f is not None] == list(range(10))
    assert sleeps == [0.5, 1.0, 2.0]
    assert stats.reconnects == 1
    assert stats.errors == 3  # the loss and two failed reopens
    assert stats.captured == 10 and stats.dropped == 0
    assert source.open_calls == 4
    assert source.close_calls >= 2  # closed on loss and at the end

    events = [entry["event"] for entry in logs]
    assert "capture_source_lost" in events
    failed = [entry for entry in logs if entry["event"] == "capture_open_failed"]
    assert [entry["attempt"] for entry in failed] == [1, 2]
    reconnected = [entry for entry in logs if entry["event"] == "capture_reconnected"]
    assert len(reconnected) == 1 and reconnected[0]["attempts"] == 3
    assert all(entry["source"] == "fake camera" for entry in failed + reconnected)


def test_backoff_is_capped_and_resets_after_a_frame() -> None:
    sleeps: list[float] = []
    source = FakeLiveSource(
        opens=[True, False, False, False, False, True, True], lose_after=[1, 1], limit=3
    )
    capture = CaptureThread(
        source, reconnect_initial_s=1.0, reconnect_max_s=4.0, sleep=sleeps.append
    )
    capture.start()
    try:
        frames = [capture.get(timeout=5) for _ in range(3)]
        stats = capture.stats
    finally:
        _stop_blocked(capture, source)
    assert all(f is not None for f in frames)
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0, 1.0]
    assert stats.reconnects == 2


def test_live_camera_missing_at_start_is_retried() -> None:
    sleeps: list[float] = []
    source = FakeLiveSource(opens=[False, False, True], limit=3)
    capture = CaptureThread(source, sleep=sleeps.append)
    capture.start()  # does not raise: a till camera may be plugged in late
    try:
        frames = [capture.get(timeout=5) for _ in range(3)]
        stats = capture.stats
    finally:
        _stop_blocked(capture, source)
    assert [f.index for f in frames if f is not None] == [0, 1, 2]
    assert sleeps == [0.5, 1.0]
    assert stats.reconnects == 0 and stats.errors == 2


def test_stop_interrupts_the_backoff_wait() -> None:
    source = FakeLiveSource(opens=[False] * 100)
    capture = CaptureThread(source, reconnect_initial_s=30.0, reconnect_max_s=30.0)
    capture.start()
    time.sleep(0.05)
    started = time.monotonic()
    capture.stop()
    capture.stop()  # idempotent
    assert time.monotonic() - started < 1.0
    assert not capture.alive
    assert capture.get() is None
    assert capture.stats.errors >= 1


def test_get_times_out_with_a_queue_empty_timeout_error() -> None:
    source = FakeLiveSource(limit=0)
    capture = CaptureThread(source)
    with pytest.raises(RuntimeError):
        capture.get()
    capture.start()
    try:
        started = time.monotonic()
        with pytest.raises(CaptureTimeout) as caught:
            capture.get(timeout=0.1)
        assert 0.09 <= time.monotonic() - started < 1.0
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, queue.Empty)
        with pytest.raises(RuntimeError):
            capture.start()
    finally:
        _stop_blocked(capture, source)
    assert capture.get(timeout=0.1) is None  # stopped and drained


class _BrokenFile:
    """A file source whose third read fails."""

    name = "broken.mp4"
    live = False

    def __init__(self) -> None:
        self.count = 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.count == 2:
            raise SourceError(f"{self.name}: read failed: corrupt packet")
        self.count += 1
        return Frame(self.count - 1, self.count / 25, np.zeros((2, 2, 3), np.uint8))

    def close(self) -> None:
        pass


def test_file_read_error_is_raised_after_the_frames_before_it() -> None:
    with CaptureThread(_BrokenFile()) as capture:
        assert [f.index for f in (capture.get(timeout=5), capture.get(timeout=5)) if f] == [0, 1]
        with pytest.raises(SourceError, match="corrupt packet"):
            capture.get(timeout=5)
        assert capture.get(timeout=5) is None
    assert capture.stats.errors == 1


# ---- clear errors ------------------------------------------------------------------------------


def test_missing_video_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "clips" / "till-3.mp4"
    with pytest.raises(SourceError, match="video file not found") as caught:
        open_source(str(missing))
    assert str(missing) in str(caught.value)


def test_file_that_disappears_or_is_not_a_video_fails_in_start(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 1024)
    with pytest.raises(SourceError, match="cannot open video file") as caught:
        CaptureThread(open_source(clip)).start()
    assert str(clip) in str(caught.value)

    source = open_source(clip)
    clip.unlink()
    with pytest.raises(SourceError, match="video file not found"):
        with CaptureThread(source):
            pass


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(SourceError, match="no images") as caught:
        open_source(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_unsupported_url_scheme_masks_credentials() -> None:
    with pytest.raises(SourceError) as caught:
        open_source("ftp://shop:hunter2@nas.local/till.mp4")
    message = str(caught.value)
    assert "unsupported URL scheme 'ftp'" in message
    assert "nas.local/till.mp4" in message
    assert "hunter2" not in message and "shop" not in message


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ("rtsp://", "no host"),
        ("rtsp:///stream", "no host"),
        ("http://:8080/video", "no host"),
        ("rtsp://camera:port/stream", "Port"),
        ("rtsp://cam era/stream", "whitespace"),
        ("rtsp:/camera/stream", "expected rtsp://"),
        ("rtsp://cam!era/stream", "invalid host"),
    ],
)
def test_malformed_urls(spec: str, detail: str) -> None:
    with pytest.raises(SourceError, match="malformed URL") as caught:
        open_source(spec)
    assert detail in str(caught.value)
    assert spec in str(caught.value)


def test_mask_url() -> None:
    assert mask_url("rtsp://admin:pw@10.0.0.5:554/h264") == "rtsp://***@10.0.0.5:554/h264"
    assert mask_url("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"
    assert mask_url("http://cam/video.cgi?user=admin&pwd=pw&res=hd") == (
        "http://cam/video.cgi?user=***&pwd=***&res=hd"
    )
    assert mask_url("rtsp:/admin:pw@cam/x") == "rtsp:/***@cam/x"


@pytest.mark.parametrize("spec", [99, "99"])
def test_unreachable_camera_index(spec: int | str) -> None:
    source = open_source(spec)
    assert source.live and source.name == "camera 99"
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot open camera 99"):
        source.open()
    assert time.monotonic() - started < 5.0


def test_negative_camera_index_and_bad_resize() -> None:
    with pytest.raises(SourceError, match="camera index"):
        open_source(-1)
    with pytest.raises(ValueError, match="resize"):
        open_source(0, resize=(0, 480))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_rtsp_to_a_closed_port_fails_fast_without_leaking_credentials() -> None:
    port = _free_port()
    source = open_source(f"rtsp://till:s3cret@127.0.0.1:{port}/stream", timeout_s=2.0)
    assert source.name == f"rtsp://***@127.0.0.1:{port}/stream"
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream") as caught:
        source.open()
    assert time.monotonic() - started < 5.0
    assert "connection refused" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_stream_that_never_answers_times_out() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections (the kernel does) but never says anything
    port = server.getsockname()[1]
    before = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    try:
        source = open_source(f"rtsp+tcp://127.0.0.1:{port}/live", timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(SourceError, match="no video arrived within 1 s"):
            source.open()
        assert time.monotonic() - started < 4.0
        assert os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS") == before  # restored
    finally:
        server.close()


# ---- a real network stream: MJPEG over HTTP ----------------------------------------------------


class _MjpegServer:
    """Serves `frames_per_connection` JPEG frames per connection, then goes silent."""

    def __init__(self, frames_per_connection: int) -> None:
        self.connections = 0
        self.shutdown = threading.Event()
        outer = self
        image = np.zeros((48, 64, 3), np.uint8)
        image[:, :] = (200, 40, 10)  # BGR: strong blue, little red
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        payload = jpeg.tobytes()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(frames_per_connection):
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(payload) + payload + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(0.01)
                except OSError:
                    return
                outer.shutdown.wait(10)  # stall: the client's read timeout must fire

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://viewer:pa55@127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"

    def __enter__(self) -> _MjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg_server() -> Iterator[_MjpegServer]:
    with _MjpegServer(frames_per_connection=15) as server:
        yield server


def test_http_stream_stall_is_detected_and_reconnected(mjpeg_server: _MjpegServer) -> None:
    source = open_source(mjpeg_server.url, timeout_s=0.75)
    assert source.live and "pa55" not in source.name
    capture = CaptureThread(source, queue_size=64, reconnect_initial_s=0.05)
    with capture_logs() as logs:
        with capture:
            frames = [capture.get(timeout=8) for _ in range(25)]
            stats = capture.stats
    got = [f for f in frames if f is not None]
    assert len(got) == 25
    assert [f.index for f in got] == list(range(25))  # counting continues across reconnects
    assert all(b.timestamp >= a.timestamp for a, b in zip(got, got[1:], strict=False))
    assert stats.reconnects >= 1 and mjpeg_server.connections >= 2
    pixel = got[-1].image[24, 32].astype(int)
    assert pixel[0] < 30 and pixel[2] > 180  # RGB order: red low, blue high
    events = [entry["event"] for entry in logs]
    assert "capture_source_lost" in events and "capture_reconnected" in events
    assert all("pa55" not in str(entry) for entry in logs)


# ---- looping a file ----------------------------------------------------------------------------


def test_looped_source_plays_the_file_again_with_rising_indices_and_timestamps(
    data_dir: Path,
) -> None:
    from kiosk_app.sources import LoopedSource

    path = _video(data_dir, TINY_CLIP)  # 5 frames at about 24 fps
    first = _reference_frames(path, 1)[0]
    source = LoopedSource(open_source(str(path)))
    source.open()
    frames = [source.read() for _ in range(12)]
    source.close()
    assert all(f is not None for f in frames)
    played = [f for f in frames if f is not None]
    assert [f.index for f in played] == list(range(12))
    stamps = [f.timestamp for f in played]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    steps = np.diff(stamps)
    assert np.allclose(steps, steps[0], rtol=0.05)  # no jump or stall at the seams
    assert source.loops == 2
    assert np.array_equal(played[5].image, first) and np.array_equal(played[10].image, first)


def test_looped_source_repeats_a_folder_of_one_image(tmp_path: Path) -> None:
    from kiosk_app.sources import LoopedSource

    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.jpg").write_bytes(
        cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    )
    source = LoopedSource(open_source(str(tmp_path / "frames")))
    source.open()
    assert source.read() is not None and source.read() is not None  # one image, again
    source.close()
