"""The live camera picture with the counter zone and the tracked faces drawn over it.

`PreviewWidget.set_frame(image, faces)` copies an RGB frame into a `QImage` and schedules a
repaint; painting only scales and draws (letterboxed on a dark background, aspect ratio kept).
The counter zone is a translucent polygon in normalised image coordinates (0..1). With
`set_zone_editing(True)` the user draws a new zone: left click adds a point, right click or
Backspace removes the last one, double click or Enter closes the polygon (three points or
more) and emits `zoneChanged`, Esc goes back to the previous zone.

`show_message(text)` shows a line of text in the middle ("camera starting…", an error): on
the dark background when there is no frame, over the frame otherwise. It stays until
`show_message("")`; a new frame does not clear it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(24, 26, 30)
ZONE_COLOUR = QColor(0, 170, 255)
DRAFT_COLOUR = QColor(255, 64, 160)
ROLE_COLOURS = {
    "primary": QColor(46, 204, 64),
    "companion": QColor(255, 176, 0),
    "passer_by": QColor(170, 170, 170),
}
ROLE_WIDTHS = {"primary": 4, "companion": 2, "passer_by": 1}
#: Aspect ratio (width / height) of the drawing area while there is no frame yet.
DEFAULT_ASPECT = 16 / 9
#: A click this close (widget pixels) to the last zone point does not add another point.
_SAME_POINT_PX = 4.0
_EDIT_HINT = (
    "click: add point · right click / Backspace: remove last · "
    "double click / Enter: close · Esc: cancel"
)


@dataclass(frozen=True)
class OverlayFace:
    track_id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    role: str  # "primary" | "companion" | "passer_by"
    label: str = ""  # extra text after the id, e.g. a customer status


class PreviewWidget(QWidget):
    """A frame, the counter zone and face boxes; the zone can be drawn with the mouse."""

    #: list[tuple[float, float]] (normalised 0..1), emitted when the user closes a new zone
    zoneChanged = Signal(list)
    #: emitted with the new state whenever zone editing starts or ends (closed, Esc, code)
    zoneEditingChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._faces: tuple[OverlayFace, ...] = ()
        self._zone: list[tuple[float, float]] = []
        self._draft: list[tuple[float, float]] | None = None  # points while editing
        self._hover: tuple[float, float] | None = None
        self._message = ""
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # ---- public API ----------------------------------------------------------------------------

    def set_frame(self, image: NDArray[np.uint8], faces: Sequence[OverlayFace] = ()) -> None:
        """Show an RGB HxWx3 uint8 frame (copied) with `faces` drawn over it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, not {image.dtype} {image.shape}")
        height, width = int(image.shape[0]), int(image.shape[1])
        data = np.ascontiguousarray(image)
        # QImage wraps the buffer without copying; .copy() gives it its own memory
        wrapped = QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888)
        self._image = wrapped.copy()
        self._faces = tuple(faces)
        self.update()

    def clear_frame(self) -> None:
        """Forget the current frame (and faces); the message, if any, is shown on black."""
        self._image = None
        self._faces = ()
        self.update()

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame shown, or None before the first frame."""
        if self._image is None:
            return None
        return self._image.width(), self._image.height()

    def set_zone(self, polygon: Sequence[tuple[float, float]]) -> None:
        """Show `polygon` (normalised 0..1) as the counter zone; ends any zone editing."""
        self._zone = [(_clamp(float(x)), _clamp(float(y))) for x, y in polygon]
        self._stop_editing()
        self.update()

    def zone(self) -> list[tuple[float, float]]:
        return list(self._zone)

    def set_zone_editing(self, enabled: bool) -> None:
        """Start drawing a new zone (the current one stays visible until it is closed), or stop."""
        if enabled == self.is_zone_editing():
            return
        if enabled:
            self._draft = []
            self._hover = None
            self.setMouseTracking(True)
            self.setFocus(Qt.FocusReason.OtherFocusReason)
            self.update()
            self.zoneEditingChanged.emit(True)
        else:
            self._stop_editing()

    def is_zone_editing(self) -> bool:
        return self._draft is not None

    def show_message(self, text: str) -> None:
        self._message = text
        self.update()

    def message(self) -> str:
        return self._message

    def map_from_normalised(self, x: float, y: float) -> QPoint:
        """The widget position of the normalised image point (x, y), e.g. to click on it."""
        rect = self._image_rect()
        return QPointF(rect.x() + x * rect.width(), rect.y() + y * rect.height()).toPoint()

    def map_to_normalised(self, position: QPointF | QPoint) -> tuple[float, float]:
        """A widget position as normalised image coordinates, clamped to 0..1."""
        rect = self._image_rect()
        x = (position.x() - rect.x()) / rect.width()
        y = (position.y() - rect.y()) / rect.height()
        return round(_clamp(x), 4), round(_clamp(y), 4)

    def sizeHint(self) -> QSize:
        return QSize(640, 360)

    # ---- editing -------------------------------------------------------------------------------

    def _stop_editing(self) -> None:
        was_editing = self._draft is not None
        self._draft = None
        self._hover = None
        self.setMouseTracking(False)
        self.update()
        if was_editing:
            self.zoneEditingChanged.emit(False)

    def _add_point(self, position: QPointF) -> None:
        if self._draft is None:
            return
        if self._draft:
            last = self._to_widget(self._draft[-1])
            if (last - position).manhattanLength() <= _SAME_POINT_PX:
                return  # the second press of a double click, or a shaky click
        self._draft.append(self.map_to_normalised(position))
        self.update()

    def _remove_point(self) -> None:
        if self._draft:
            self._draft.pop()
            self.update()

    def _close_zone(self) -> bool:
        if self._draft is None or len(self._draft) < 3:
            return False
        self._zone = list(self._draft)
        self._stop_editing()
        self.zoneChanged.emit(list(self._zone))
        return True

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._draft is None:
            super().mousePressEvent(event)
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._add_point(event.position())
        elif event.button() == Qt.MouseButton.RightButton:
            self._remove_point()
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._draft is None or event.button() != Qt.MouseButton.LeftButton:
            super().mouseDoubleClickEvent(event)
            return
        self._add_point(event.position())  # no-op when the first click already added it
        self._close_zone()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._draft is not None:
            self._hover = self.map_to_normalised(event.position())
            self.update()
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._draft is None:
            super().keyPressEvent(event)
            return
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._close_zone()
        elif key in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self._remove_point()
        elif key == Qt.Key.Key_Escape:
            self._stop_editing()
        else:
            super().keyPressEvent(event)
            return
        event.accept()  # handled: a dialog around us must not close or press a button

    # ---- painting ------------------------------------------------------------------------------

    def _image_rect(self) -> QRectF:
        """Where the frame is drawn: as large as fits, centred, aspect ratio kept."""
        width, height = max(1, self.width()), max(1, self.height())
        aspect = (
            self._image.width() / self._image.height()
            if self._image is not None and self._image.height() > 0
            else DEFAULT_ASPECT
        )
        if width / height > aspect:
            shown_w, shown_h = height * aspect, float(height)
        else:
            shown_w, shown_h = float(width), width / aspect
        return QRectF((width - shown_w) / 2, (height - shown_h) / 2, shown_w, shown_h)

    def _to_widget(self, point: tuple[float, float]) -> QPointF:
        rect = self._image_rect()
        return QPointF(rect.x() + point[0] * rect.width(), rect.y() + point[1] * rect.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), BACKGROUND)
            rect = self._image_rect()
            if self._image is not None:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                painter.drawImage(rect, self._image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._paint_zone(painter)
            if self._image is not None:
                self._paint_faces(painter, rect)
            if self._draft is not None:
                self._paint_draft(painter)
            if self._message:
                self._paint_message(painter)
        finally:
            painter.end()

    def _paint_zone(self, painter: QPainter) -> None:
        if len(self._zone) < 3:
            return
        fill = QColor(ZONE_COLOUR)
        fill.setAlpha(30 if self._draft is not None else 55)
        outline = QColor(ZONE_COLOUR)
        outline.setAlpha(120 if self._draft is not None else 220)
        pen = QPen(outline, 2)
        if self._draft is not None:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(QBrush(fill))
        painter.drawPolygon(QPolygonF([self._to_widget(p) for p in self._zone]))

    def _paint_faces(self, painter: QPainter, rect: QRectF) -> None:
        if self._image is None or not self._faces:
            return
        scale_x = rect.width() / self._image.width()
        scale_y = rect.height() / self._image.height()
        metrics = QFontMetrics(painter.font())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        # passers-by first, so the customer's box is drawn on top
        order = {"passer_by": 0, "companion": 1, "primary": 2}
        for face in sorted(self._faces, key=lambda f: order.get(f.role, 0)):
            colour = ROLE_COLOURS.get(face.role, ROLE_COLOURS["passer_by"])
            x1, y1, x2, y2 = face.box
            box = QRectF(
                rect.x() + x1 * scale_x,
                rect.y() + y1 * scale_y,
                (x2 - x1) * scale_x,
                (y2 - y1) * scale_y,
            )
            painter.setPen(QPen(colour, ROLE_WIDTHS.get(face.role, 1)))
            painter.drawRect(box)
            text = f"#{face.track_id}"
            if face.role == "primary":
                text += " customer"
            if face.label:
                text += f" {face.label}"
            text_w = metrics.horizontalAdvance(text) + 8
            text_h = metrics.height() + 2
            top = box.top() - text_h if box.top() - text_h >= rect.top() else box.top()
            label = QRectF(box.left(), top, text_w, text_h)
            painter.fillRect(label, colour)
            painter.setPen(QColor(0, 0, 0) if face.role != "passer_by" else QColor(20, 20, 20))
            painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_draft(self, painter: QPainter) -> None:
        draft = self._draft or []
        points = [self._to_widget(p) for p in draft]
        painter.setPen(QPen(DRAFT_COLOUR, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if len(points) > 1:
            painter.drawPolyline(QPolygonF(points))
        if points and self._hover is not None:
            rubber = QPen(DRAFT_COLOUR, 1, Qt.PenStyle.DashLine)
            painter.setPen(rubber)
            hover = self._to_widget(self._hover)
            painter.drawLine(points[-1], hover)
            if len(points) >= 2:
                painter.drawLine(hover, points[0])
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        painter.setBrush(QBrush(DRAFT_COLOUR))
        for point in points:
            painter.drawEllipse(point, 4.0, 4.0)
        self._paint_banner(painter, _EDIT_HINT, bottom=True)

    def _paint_message(self, painter: QPainter) -> None:
        self._paint_banner(painter, self._message, bottom=False)

    def _paint_banner(self, painter: QPainter, text: str, *, bottom: bool) -> None:
        margin = 8
        area = self.rect().adjusted(margin, margin, -margin, -margin)
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap
        metrics = QFontMetrics(painter.font())
        bounds = QRectF(metrics.boundingRect(area, int(flags), text)).adjusted(-8, -4, 8, 4)
        if bottom:
            bounds.moveBottom(area.bottom())
        else:
            bounds.moveCenter(QRectF(self.rect()).center())
        bounds.moveLeft(max(float(margin), (self.width() - bounds.width()) / 2))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(bounds, 4, 4)
        painter.setPen(QColor(240, 240, 240))
        painter.drawText(bounds, int(flags | Qt.AlignmentFlag.AlignVCenter), text)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
