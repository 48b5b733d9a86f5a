"""cut's errors: one root, declared in the app's spec.

    CutError
    ├── ToolMissingError    ffmpeg, ffprobe or melt is not installed (says what to install)
    ├── MediaError          not a media file, truncated, no stream cut can use
    └── AnalysisNotFound    no stored analysis for that file (run `smallhold cut analyze`)
"""

from __future__ import annotations

from smallhold.errors import AppError


class CutError(AppError):
    code = "cut_error"


class ToolMissingError(CutError):
    exit_code = 4
    code = "tool_missing"


class MediaError(CutError):
    exit_code = 2
    http_status = 422
    code = "media_invalid"


class AnalysisNotFound(CutError):
    http_status = 404
    code = "analysis_not_found"


__all__ = ["AnalysisNotFound", "CutError", "MediaError", "ToolMissingError"]
