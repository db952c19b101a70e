"""A multi-line query box (one query per line) with the query history as its completer."""
from __future__ import annotations

from qgis.PyQt.QtCore import QStringListModel, Qt
from qgis.PyQt.QtGui import QTextCursor
from qgis.PyQt.QtWidgets import QCompleter, QPlainTextEdit


class QueryEdit(QPlainTextEdit):
    """QPlainTextEdit whose current line is completed from a history list (Ctrl+Space opens it on demand)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._model = QStringListModel([], self)
        self._completer = QCompleter(self._model, self)
        self._completer.setWidget(self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self._completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self._completer.activated[str].connect(self._insert_completion)
        self.setPlaceholderText("One description per line, e.g.\nthe white storage tanks\nthe runway")
        self.setTabChangesFocus(True)

    def completer(self) -> QCompleter:
        return self._completer

    def set_history(self, items: list[str]) -> None:
        self._model.setStringList(list(items))

    def history(self) -> list[str]:
        return self._model.stringList()

    def queries(self) -> list[str]:
        return [line.strip() for line in self.toPlainText().splitlines() if line.strip()]

    def _current_line(self) -> str:
        return self.textCursor().block().text()

    def _insert_completion(self, text: str) -> None:
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock)
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text)
        self.setTextCursor(cursor)

    def keyPressEvent(self, event):  # noqa: N802 - Qt's name
        popup = self._completer.popup()
        if popup.isVisible() and event.key() in (Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab,
                                                 Qt.Key.Key_Backtab):
            event.ignore()
            return
        forced = event.key() == Qt.Key.Key_Space and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        if not forced:
            super().keyPressEvent(event)
        prefix = self._current_line().strip()
        if not forced and len(prefix) < 2:
            popup.hide()
            return
        self._completer.setCompletionPrefix(prefix)
        if self._completer.completionCount() == 0:
            popup.hide()
            return
        rect = self.cursorRect()
        rect.setWidth(max(200, popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width()))
        self._completer.complete(rect)
