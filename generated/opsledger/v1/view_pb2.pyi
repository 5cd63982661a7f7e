from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ViewError(_message.Message):
    __slots__ = ("code", "message", "preview")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    preview: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., preview: _Optional[str] = ...) -> None: ...
