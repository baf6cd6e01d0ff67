"""The C ABI layout, pinned to numbers derived by hand from ABI.md.

Every struct of the ABI is checked three ways against a table written out
below (never computed from cffi): the field names in order, each field's
offset and C type (function pointers with their full signature), and the
struct's size.  The numbers are those of an LP64 target (x86-64 / aarch64
Linux and macOS): pointers, ``size_t`` and ``int64_t`` are 8 bytes with
8-byte alignment, ``bool`` is 1 byte, every enum and ``int32_t`` is 4 bytes.
Comments show where padding appears.

The enum constants are pinned the same way, and the header itself is
compiled as a standalone translation unit (C11, and C++11 when ``g++`` is
available) with warnings as errors and static assertions on a few offsets,
which is what a plugin author does with it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from drasi_host import models
from drasi_host._abi import ffi, lib

pytestmark = pytest.mark.skipif(
    struct.calcsize("P") != 8 or struct.calcsize("N") != 8 or sys.platform == "win32",
    reason="the pinned layout is that of an LP64 platform (64-bit Linux/macOS)",
)

HEADER = Path(__file__).resolve().parent.parent / "cdefs" / "drasi_plugin.h"

# Short names for the C types as cffi spells them (const is not kept).
STR = "struct FfiStr"
OWNED = "struct FfiOwnedStr"
RESULT = "struct FfiResult"
P = "void *"
EXECUTOR = "void *(*)(void *)"
DROP = "void(*)(void *)"
LOG_CB = "void(*)(void *, struct FfiLogEntry *)"
LIFECYCLE_CB = "void(*)(void *, struct FfiLifecycleEvent *)"
STR_FN = "struct FfiStr(*)(void *)"
RESULT_FN = "struct FfiResult(*)(void *)"
STATUS_FN = "enum FfiComponentStatus(*)(void *)"
BOOL_FN = "_Bool(*)(void *)"
INIT_FN = "void(*)(void *, struct FfiRuntimeContext *)"
SCHEMA_JSON_FN = "struct FfiOwnedStr(*)(void *)"
BOOTSTRAP_FN = (
    "int64_t(*)(void *, struct FfiStr, struct FfiStr *, size_t, struct FfiStr *, size_t, "
    "struct FfiStr, struct FfiStr, struct FfiStr, struct FfiBootstrapSender *)"
)

Field = tuple[str, int, str]

# name -> (sizeof, [(field, offset, C type), ...] in ABI.md order)
LAYOUT: dict[str, tuple[int, list[Field]]] = {
    # ---- section 1 -----------------------------------------------------
    "FfiStr": (16, [("ptr", 0, "char *"), ("len", 8, "size_t")]),
    "FfiOwnedStr": (24, [("ptr", 0, "char *"), ("len", 8, "size_t"), ("cap", 16, "size_t")]),
    "FfiStringArray": (
        24,
        [("data", 0, "struct FfiOwnedStr *"), ("len", 8, "size_t"), ("cap", 16, "size_t")],
    ),
    # error_code 0..4, 4 bytes padding, error_msg 8..16
    "FfiResult": (16, [("error_code", 0, "int32_t"), ("error_msg", 8, "char *")]),
    # data 0, len 8, cap 16, found 24 (1 byte), 3 bytes padding so that
    # error_code (4-aligned) sits at 28, error_msg 32, size 40
    "FfiGetResult": (
        40,
        [
            ("data", 0, "uint8_t *"),
            ("len", 8, "size_t"),
            ("cap", 16, "size_t"),
            ("found", 24, "_Bool"),
            ("error_code", 28, "int32_t"),
            ("error_msg", 32, "char *"),
        ],
    ),
    # ---- section 3: seven 16-byte FfiStr back to back -------------------
    "PluginMetadata": (
        112,
        [
            ("sdk_version", 0, STR),
            ("core_version", 16, STR),
            ("lib_version", 32, STR),
            ("plugin_version", 48, STR),
            ("target_triple", 64, STR),
            ("git_commit", 80, STR),
            ("build_timestamp", 96, STR),
        ],
    ),
    # ---- section 4 -----------------------------------------------------
    # level 0..4, 4 bytes padding before the 8-aligned FfiStr at 8
    "FfiLogEntry": (
        96,
        [
            ("level", 0, "enum FfiLogLevel"),
            ("plugin_id", 8, STR),
            ("target", 24, STR),
            ("message", 40, STR),
            ("timestamp_us", 56, "int64_t"),
            ("instance_id", 64, STR),
            ("component_id", 80, STR),
        ],
    ),
    # event_type 32..36, 4 bytes padding, message 40
    "FfiLifecycleEvent": (
        64,
        [
            ("component_id", 0, STR),
            ("component_type", 16, STR),
            ("event_type", 32, "enum FfiLifecycleEventType"),
            ("message", 40, STR),
            ("timestamp_us", 56, "int64_t"),
        ],
    ),
    # ---- section 6 -----------------------------------------------------
    # op 32..36, 4 bytes padding, label 40
    "FfiSourceEvent": (
        80,
        [
            ("opaque", 0, P),
            ("source_id", 8, STR),
            ("timestamp_us", 24, "int64_t"),
            ("op", 32, "enum FfiChangeOp"),
            ("label", 40, STR),
            ("entity_id", 56, STR),
            ("drop_fn", 72, DROP),
        ],
    ),
    # sequence is 8 bytes where FfiSourceEvent has op + padding: same size
    "FfiBootstrapEvent": (
        80,
        [
            ("opaque", 0, P),
            ("source_id", 8, STR),
            ("timestamp_us", 24, "int64_t"),
            ("sequence", 32, "uint64_t"),
            ("label", 40, STR),
            ("entity_id", 56, STR),
            ("drop_fn", 72, DROP),
        ],
    ),
    "FfiChangeReceiver": (
        32,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            (
                "start_push_fn",
                16,
                "void(*)(void *, _Bool(*)(void *, struct FfiSourceEvent *), void *)",
            ),
            ("drop_fn", 24, DROP),
        ],
    ),
    # no executor field
    "FfiBootstrapReceiver": (
        24,
        [
            ("state", 0, P),
            (
                "start_push_fn",
                8,
                "void(*)(void *, _Bool(*)(void *, struct FfiBootstrapEvent *), void *)",
            ),
            ("drop_fn", 16, DROP),
        ],
    ),
    # two 24-byte FfiOwnedStr, then two pointers
    "FfiSubscriptionResponse": (
        64,
        [
            ("query_id", 0, OWNED),
            ("source_id", 24, OWNED),
            ("receiver", 48, "struct FfiChangeReceiver *"),
            ("bootstrap_receiver", 56, "struct FfiBootstrapReceiver *"),
        ],
    ),
    # ---- section 8 -----------------------------------------------------
    # fourteen pointers, no executor
    "StateStoreVtable": (
        112,
        [
            ("state", 0, P),
            ("get_fn", 8, "struct FfiGetResult(*)(void *, struct FfiStr, struct FfiStr)"),
            (
                "set_fn",
                16,
                "struct FfiResult(*)(void *, struct FfiStr, struct FfiStr, uint8_t *, size_t)",
            ),
            ("delete_fn", 24, "struct FfiResult(*)(void *, struct FfiStr, struct FfiStr)"),
            ("contains_key_fn", 32, "struct FfiResult(*)(void *, struct FfiStr, struct FfiStr)"),
            (
                "get_many_fn",
                40,
                "struct FfiResult(*)(void *, struct FfiStr, struct FfiStr *, size_t, "
                "struct FfiGetResult *)",
            ),
            (
                "set_many_fn",
                48,
                "struct FfiResult(*)(void *, struct FfiStr, struct FfiStr *, uint8_t * *, "
                "size_t *, size_t)",
            ),
            ("delete_many_fn", 56, "int64_t(*)(void *, struct FfiStr, struct FfiStr *, size_t)"),
            ("clear_store_fn", 64, "int64_t(*)(void *, struct FfiStr)"),
            ("list_keys_fn", 72, "struct FfiStringArray(*)(void *, struct FfiStr)"),
            ("store_exists_fn", 80, "struct FfiResult(*)(void *, struct FfiStr)"),
            ("key_count_fn", 88, "int64_t(*)(void *, struct FfiStr)"),
            ("sync_fn", 96, RESULT_FN),
            ("drop_fn", 104, DROP),
        ],
    ),
    # credential_type 0..4, 4 bytes padding, then three pointers
    "FfiCredentials": (
        32,
        [
            ("credential_type", 0, "enum FfiCredentialType"),
            ("field1", 8, "char *"),
            ("field2", 16, "char *"),
            ("field3", 24, "char *"),
        ],
    ),
    # error_code 0..4, 4 bytes padding, error_msg 8, credentials (32 bytes) 16
    "FfiCredentialsResult": (
        48,
        [
            ("error_code", 0, "int32_t"),
            ("error_msg", 8, "char *"),
            ("credentials", 16, "struct FfiCredentials"),
        ],
    ),
    "IdentityProviderVtable": (
        32,
        [
            ("state", 0, P),
            ("get_credentials_fn", 8, "struct FfiCredentialsResult(*)(void *)"),
            ("clone_fn", 16, "void *(*)(void *)"),
            ("drop_fn", 24, DROP),
        ],
    ),
    "FfiBootstrapSender": (
        24,
        [
            ("state", 0, P),
            ("send_fn", 8, "int32_t(*)(void *, struct FfiBootstrapEvent *)"),
            ("drop_fn", 16, DROP),
        ],
    ),
    "BootstrapProviderVtable": (
        32,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("bootstrap_fn", 16, BOOTSTRAP_FN),
            ("drop_fn", 24, DROP),
        ],
    ),
    # ---- section 6: context and source ----------------------------------
    # two FfiStr (0, 16), then six pointers from 32
    "FfiRuntimeContext": (
        80,
        [
            ("instance_id", 0, STR),
            ("component_id", 16, STR),
            ("state_store", 32, "struct StateStoreVtable *"),
            ("log_callback", 40, LOG_CB),
            ("log_ctx", 48, P),
            ("lifecycle_callback", 56, LIFECYCLE_CB),
            ("lifecycle_ctx", 64, P),
            ("identity_provider", 72, "struct IdentityProviderVtable *"),
        ],
    ),
    # fourteen pointers
    "SourceVtable": (
        112,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("id_fn", 16, STR_FN),
            ("type_name_fn", 24, STR_FN),
            ("auto_start_fn", 32, BOOL_FN),
            ("dispatch_mode_fn", 40, "enum FfiDispatchMode(*)(void *)"),
            ("start_fn", 48, RESULT_FN),
            ("stop_fn", 56, RESULT_FN),
            ("status_fn", 64, STATUS_FN),
            ("deprovision_fn", 72, RESULT_FN),
            ("initialize_fn", 80, INIT_FN),
            (
                "subscribe_fn",
                88,
                "struct FfiSubscriptionResponse *(*)(void *, struct FfiStr, _Bool, "
                "struct FfiStr, struct FfiStr, struct FfiStr)",
            ),
            ("set_bootstrap_provider_fn", 96, "void(*)(void *, struct BootstrapProviderVtable *)"),
            ("drop_fn", 104, DROP),
        ],
    ),
    # ---- section 7: thirteen pointers -----------------------------------
    "ReactionVtable": (
        104,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("id_fn", 16, STR_FN),
            ("type_name_fn", 24, STR_FN),
            ("auto_start_fn", 32, BOOL_FN),
            ("query_ids_fn", 40, "struct FfiStringArray(*)(void *)"),
            ("start_fn", 48, RESULT_FN),
            ("stop_fn", 56, RESULT_FN),
            ("status_fn", 64, STATUS_FN),
            ("deprovision_fn", 72, RESULT_FN),
            ("initialize_fn", 80, INIT_FN),
            ("start_result_push_fn", 88, "void(*)(void *, void *(*)(void *, void *), void *)"),
            ("drop_fn", 96, DROP),
        ],
    ),
    # ---- section 5: eight pointers each ----------------------------------
    "SourcePluginVtable": (
        64,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("kind_fn", 16, STR_FN),
            ("config_version_fn", 24, STR_FN),
            ("config_schema_json_fn", 32, SCHEMA_JSON_FN),
            ("config_schema_name_fn", 40, STR_FN),
            (
                "create_source_fn",
                48,
                "struct SourceVtable *(*)(void *, struct FfiStr, struct FfiStr, _Bool)",
            ),
            ("drop_fn", 56, DROP),
        ],
    ),
    "ReactionPluginVtable": (
        64,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("kind_fn", 16, STR_FN),
            ("config_version_fn", 24, STR_FN),
            ("config_schema_json_fn", 32, SCHEMA_JSON_FN),
            ("config_schema_name_fn", 40, STR_FN),
            (
                "create_reaction_fn",
                48,
                "struct ReactionVtable *(*)(void *, struct FfiStr, struct FfiStr, "
                "struct FfiStr, _Bool)",
            ),
            ("drop_fn", 56, DROP),
        ],
    ),
    "BootstrapPluginVtable": (
        64,
        [
            ("state", 0, P),
            ("executor", 8, EXECUTOR),
            ("kind_fn", 16, STR_FN),
            ("config_version_fn", 24, STR_FN),
            ("config_schema_json_fn", 32, SCHEMA_JSON_FN),
            ("config_schema_name_fn", 40, STR_FN),
            (
                "create_bootstrap_provider_fn",
                48,
                "struct BootstrapProviderVtable *(*)(void *, struct FfiStr, struct FfiStr)",
            ),
            ("drop_fn", 56, DROP),
        ],
    ),
    # ---- section 3: (pointer, count) x 3, then two setters ---------------
    "FfiPluginRegistration": (
        64,
        [
            ("source_plugins", 0, "struct SourcePluginVtable *"),
            ("source_plugin_count", 8, "size_t"),
            ("reaction_plugins", 16, "struct ReactionPluginVtable *"),
            ("reaction_plugin_count", 24, "size_t"),
            ("bootstrap_plugins", 32, "struct BootstrapPluginVtable *"),
            ("bootstrap_plugin_count", 40, "size_t"),
            ("set_log_callback", 48, "void(*)(void *, " + LOG_CB + ")"),
            ("set_lifecycle_callback", 56, "void(*)(void *, " + LIFECYCLE_CB + ")"),
        ],
    ),
    # ---- section 9 -----------------------------------------------------
    "DrasiPayload": (
        24,
        [
            ("data", 0, "uint8_t *"),
            ("len", 8, "size_t"),
            ("drop_fn", 16, "void(*)(struct DrasiPayload *)"),
        ],
    ),
}

# Every enum of ABI.md section 2: C constant -> value.
ENUMS: dict[str, dict[str, int]] = {
    "FfiComponentStatus": {
        "FFI_COMPONENT_STATUS_STOPPED": 0,
        "FFI_COMPONENT_STATUS_STARTING": 1,
        "FFI_COMPONENT_STATUS_RUNNING": 2,
        "FFI_COMPONENT_STATUS_STOPPING": 3,
        "FFI_COMPONENT_STATUS_RECONFIGURING": 4,
        "FFI_COMPONENT_STATUS_ERROR": 5,
    },
    "FfiChangeOp": {
        "FFI_CHANGE_OP_INSERT": 0,
        "FFI_CHANGE_OP_UPDATE": 1,
        "FFI_CHANGE_OP_DELETE": 2,
    },
    "FfiDispatchMode": {
        "FFI_DISPATCH_MODE_BROADCAST": 0,
        "FFI_DISPATCH_MODE_CHANNEL": 1,
    },
    "FfiLogLevel": {
        "FFI_LOG_LEVEL_ERROR": 0,
        "FFI_LOG_LEVEL_WARN": 1,
        "FFI_LOG_LEVEL_INFO": 2,
        "FFI_LOG_LEVEL_DEBUG": 3,
        "FFI_LOG_LEVEL_TRACE": 4,
    },
    "FfiLifecycleEventType": {
        "FFI_LIFECYCLE_STARTING": 0,
        "FFI_LIFECYCLE_STARTED": 1,
        "FFI_LIFECYCLE_STOPPING": 2,
        "FFI_LIFECYCLE_STOPPED": 3,
        "FFI_LIFECYCLE_ERROR": 4,
    },
    "FfiCredentialType": {
        "FFI_CREDENTIAL_USERNAME_PASSWORD": 0,
        "FFI_CREDENTIAL_TOKEN": 1,
        "FFI_CREDENTIAL_CERTIFICATE": 2,
    },
}

# The Python enums mirror the C ones value for value.
PY_ENUMS = {
    "FfiComponentStatus": models.ComponentStatus,
    "FfiChangeOp": models.ChangeOp,
    "FfiDispatchMode": models.DispatchMode,
    "FfiLogLevel": models.LogLevel,
    "FfiLifecycleEventType": models.LifecycleEventType,
    "FfiCredentialType": models.CredentialKind,
}

# Exported-symbol function types (section 3).
SYMBOL_TYPES = {
    "DrasiPluginMetadataFn": "struct PluginMetadata *(*)()",
    "DrasiPluginInitFn": "struct FfiPluginRegistration *(*)()",
    "DrasiPluginPayloadFormatFn": "struct FfiStr(*)()",
}


def test_every_abi_struct_is_in_the_table() -> None:
    assert len(LAYOUT) == 27


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_field_order(name: str) -> None:
    _, fields = LAYOUT[name]
    assert [f for f, _ in ffi.typeof(name).fields] == [f for f, _, _ in fields]


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_size_and_offsets(name: str) -> None:
    size, fields = LAYOUT[name]
    assert ffi.sizeof(name) == size
    for field, offset, _ in fields:
        assert ffi.offsetof(name, field) == offset, f"{name}.{field}"
    # The table itself is consistent: offsets start at 0, strictly increase
    # and stay inside the struct.
    offsets = [offset for _, offset, _ in fields]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert offsets[-1] < size


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_field_types(name: str) -> None:
    _, fields = LAYOUT[name]
    actual = {f: t.type.cname for f, t in ffi.typeof(name).fields}
    for field, _, ctype in fields:
        assert actual[field] == ctype, f"{name}.{field}"


def test_scalar_sizes() -> None:
    assert ffi.sizeof("void *") == 8
    assert ffi.sizeof("size_t") == 8
    assert ffi.sizeof("bool") == 1
    assert ffi.sizeof("int64_t") == 8
    for enum_name in ENUMS:
        assert ffi.sizeof(enum_name) == 4, enum_name
        assert ffi.typeof(enum_name).kind == "enum"


@pytest.mark.parametrize("enum_name", sorted(ENUMS))
def test_enum_values(enum_name: str) -> None:
    for constant, value in ENUMS[enum_name].items():
        assert getattr(lib, constant) == value, constant
    # cffi's view of the enum lists exactly these constants.
    assert dict(ffi.typeof(enum_name).relements) == ENUMS[enum_name]
    # And the public Python enum starts with the same values in the same
    # order; ComponentStatus goes on with the FFI 0.13 values (6, 7).
    values = [m.value for m in PY_ENUMS[enum_name]]
    assert values[: len(ENUMS[enum_name])] == list(ENUMS[enum_name].values())
    extra = {"FfiComponentStatus": [6, 7]}.get(enum_name, [])
    assert values[len(ENUMS[enum_name]) :] == extra


def test_lib_constant_example() -> None:
    assert lib.FFI_COMPONENT_STATUS_RUNNING == 2
    assert lib.FFI_LIFECYCLE_ERROR == 4
    assert lib.FFI_CREDENTIAL_CERTIFICATE == 2


@pytest.mark.parametrize("name", sorted(SYMBOL_TYPES))
def test_exported_symbol_types(name: str) -> None:
    assert ffi.typeof(name).cname == SYMBOL_TYPES[name]


def test_callback_typedefs() -> None:
    assert ffi.typeof("LogCallbackFn").cname == LOG_CB
    assert ffi.typeof("LifecycleCallbackFn").cname == LIFECYCLE_CB
    assert ffi.typeof("AsyncExecutorFn").cname == EXECUTOR
    assert (
        ffi.typeof("FfiChangePushCallbackFn").cname == "_Bool(*)(void *, struct FfiSourceEvent *)"
    )
    assert (
        ffi.typeof("FfiBootstrapPushCallbackFn").cname
        == "_Bool(*)(void *, struct FfiBootstrapEvent *)"
    )
    assert ffi.typeof("FfiResultPushCallbackFn").cname == "void *(*)(void *, void *)"


# ---- the header as a plugin author compiles it ----------------------------

_C_CHECKS = """
#include "drasi_plugin.h"
#include <stddef.h>

{assert_kw}(sizeof(FfiStr) == 16, "FfiStr");
{assert_kw}(sizeof(FfiGetResult) == 40, "FfiGetResult");
{assert_kw}(offsetof(FfiGetResult, found) == 24, "FfiGetResult.found");
{assert_kw}(offsetof(FfiGetResult, error_code) == 28, "FfiGetResult.error_code");
{assert_kw}(offsetof(FfiGetResult, error_msg) == 32, "FfiGetResult.error_msg");
{assert_kw}(offsetof(FfiLogEntry, plugin_id) == 8, "FfiLogEntry.plugin_id");
{assert_kw}(offsetof(FfiLogEntry, timestamp_us) == 56, "FfiLogEntry.timestamp_us");
{assert_kw}(offsetof(FfiLifecycleEvent, message) == 40, "FfiLifecycleEvent.message");
{assert_kw}(offsetof(FfiSourceEvent, label) == 40, "FfiSourceEvent.label");
{assert_kw}(offsetof(FfiSourceEvent, drop_fn) == 72, "FfiSourceEvent.drop_fn");
{assert_kw}(offsetof(FfiBootstrapEvent, sequence) == 32, "FfiBootstrapEvent.sequence");
{assert_kw}(offsetof(FfiCredentialsResult, credentials) == 16, "credentials");
{assert_kw}(offsetof(FfiRuntimeContext, identity_provider) == 72, "identity_provider");
{assert_kw}(sizeof(SourceVtable) == 112, "SourceVtable");
{assert_kw}(offsetof(SourceVtable, drop_fn) == 104, "SourceVtable.drop_fn");
{assert_kw}(sizeof(ReactionVtable) == 104, "ReactionVtable");
{assert_kw}(sizeof(StateStoreVtable) == 112, "StateStoreVtable");
{assert_kw}(offsetof(FfiPluginRegistration, set_lifecycle_callback) == 56, "registration");
{assert_kw}(sizeof(FfiComponentStatus) == 4, "enum size");
{assert_kw}(FFI_COMPONENT_STATUS_ERROR == 5, "enum value");
{assert_kw}(sizeof(DrasiPayload) == 24, "DrasiPayload");

/* The exported symbols, defined the way a plugin defines them. */
static const PluginMetadata metadata = {{
    {{DRASI_SDK_VERSION, sizeof(DRASI_SDK_VERSION) - 1}},
    {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}},
}};
const PluginMetadata *drasi_plugin_metadata(void) {{ return &metadata; }}
FfiPluginRegistration *drasi_plugin_init(void) {{ return NULL; }}
FfiStr drasi_plugin_payload_format(void) {{
    FfiStr s = {{"application/json", 16}};
    return s;
}}
"""


def _compile(compiler: str, flags: list[str], source: str, suffix: str, tmp_path: Path) -> None:
    src = tmp_path / f"plugin_tu{suffix}"
    src.write_text(source, encoding="utf-8")
    cmd = [
        compiler,
        *flags,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-I",
        str(HEADER.parent),
        "-c",
        str(src),
        "-o",
        str(tmp_path / f"plugin_tu{suffix}.o"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_header_compiles_as_c11(tmp_path: Path) -> None:
    _compile("cc", ["-std=c11"], _C_CHECKS.format(assert_kw="_Static_assert"), ".c", tmp_path)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_header_compiles_as_cxx(tmp_path: Path) -> None:
    # The header's extern "C" declarations give the definitions C linkage.
    source = _C_CHECKS.format(assert_kw="static_assert")
    _compile("g++", ["-std=c++11"], source, ".cpp", tmp_path)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_header_layout_asserts_can_fail(tmp_path: Path) -> None:
    # The static assertions above are live: a wrong offset is a compile error.
    source = '#include "drasi_plugin.h"\n#include <stddef.h>\n' + (
        '_Static_assert(offsetof(FfiGetResult, error_code) == 24, "wrong on purpose");\n'
    )
    with pytest.raises(AssertionError, match="wrong on purpose"):
        _compile("cc", ["-std=c11"], source, ".c", tmp_path)
