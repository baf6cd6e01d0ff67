"""The FFI 0.13 layout, pinned to the numbers of ABI-0.13.md.

Every one of the 48 structs of the 0.13 header is listed below with its size
and the offset of every field, copied by hand from the specification (for
the structs it calls unchanged, from the 0.4 tables).  The table is checked
three ways:

* against cffi's ABI-mode reading of ``cdefs/drasi_plugin_0_13.h`` (the
  stripped header, exactly as ``ffi_build/build_ffi013.py`` feeds it to cffi);
* against a C program compiled here from the header, printing ``sizeof`` and
  ``offsetof`` of everything;
* against the compiled API-mode module ``drasi_host._ffi013``, whose layout
  cffi verifies with the C compiler.

The header is also compiled standalone as C11 and C++11 with warnings as
errors, with the exported symbols defined as a plugin defines them.  LP64
numbers (x86-64 / aarch64 Linux and macOS).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from abi013_helpers import HEADER_013, build_ffi013_module, compile_ffi013
from cffi import FFI

pytestmark = pytest.mark.skipif(
    struct.calcsize("P") != 8 or sys.platform == "win32",
    reason="the pinned layout is that of an LP64 platform (64-bit Linux/macOS)",
)

Field = tuple[str, int]


def _seq(names: str, step: int = 8) -> list[Field]:
    """Fields of pointer size back to back from offset 0."""
    return [(n, i * step) for i, n in enumerate(names.split())]


_FACTORY = (
    "state executor kind_fn config_version_fn config_schema_json_fn config_schema_name_fn "
    "{create} drop_fn"
)

# name -> (sizeof, [(field, offset), ...] in declaration order), from ABI-0.13.md
LAYOUT: dict[str, tuple[int, list[Field]]] = {
    # -- unchanged primitives (ABI.md section 1) --
    "FfiStr": (16, [("ptr", 0), ("len", 8)]),
    "FfiOwnedStr": (24, [("ptr", 0), ("len", 8), ("cap", 16)]),
    "FfiStringArray": (24, [("data", 0), ("len", 8), ("cap", 16)]),
    "FfiResult": (16, [("error_code", 0), ("error_msg", 8)]),
    "FfiGetResult": (
        40,
        [
            ("data", 0),
            ("len", 8),
            ("cap", 16),
            ("found", 24),
            ("error_code", 28),
            ("error_msg", 32),
        ],
    ),
    # -- section 3 --
    "FfiCreateResult": (24, [("ptr", 0), ("error_code", 8), ("error_msg", 16)]),
    "FfiGetSecretResult": (24, [("error_code", 0), ("error_msg", 8), ("value", 16)]),
    # -- unchanged metadata, log, lifecycle --
    "PluginMetadata": (
        112,
        _seq(
            "sdk_version core_version lib_version plugin_version target_triple git_commit "
            "build_timestamp",
            16,
        ),
    ),
    "FfiLogEntry": (
        96,
        [
            ("level", 0),
            ("plugin_id", 8),
            ("target", 24),
            ("message", 40),
            ("timestamp_us", 56),
            ("instance_id", 64),
            ("component_id", 80),
        ],
    ),
    "FfiLifecycleEvent": (
        64,
        [
            ("component_id", 0),
            ("component_type", 16),
            ("event_type", 32),
            ("message", 40),
            ("timestamp_us", 56),
        ],
    ),
    # -- section 7: events and receivers --
    "FfiSourceEvent": (
        40,
        [
            ("payload_ptr", 0),
            ("payload_len", 8),
            ("payload_drop_fn", 16),
            ("op", 24),
            ("timestamp_us", 32),
        ],
    ),
    "FfiBootstrapEvent": (
        40,
        [
            ("payload_ptr", 0),
            ("payload_len", 8),
            ("payload_drop_fn", 16),
            ("timestamp_us", 24),
            ("sequence", 32),
        ],
    ),
    "FfiChangeReceiver": (32, _seq("state executor start_push_fn drop_fn")),
    "FfiBootstrapReceiver": (24, _seq("state start_push_fn drop_fn")),
    "FfiSubscriptionResponse": (
        80,
        [
            ("query_id", 0),
            ("source_id", 24),
            ("receiver", 48),
            ("bootstrap_receiver", 56),
            ("position_handle_ptr", 64),
            ("bootstrap_result_receiver", 72),
        ],
    ),
    # -- section 9: bootstrap streams --
    "FfiBootstrapResult": (
        56,
        [
            ("event_count", 0),
            ("source_position_ptr", 8),
            ("source_position_len", 16),
            ("source_position_drop_fn", 24),
            ("error_ptr", 32),
            ("error_len", 40),
            ("error_drop_fn", 48),
        ],
    ),
    "FfiBootstrapResultReceiver": (24, _seq("state start_fn drop_fn")),
    "FfiBootstrapStream": (16, _seq("events result")),
    "BootstrapProviderVtable": (32, _seq("state executor bootstrap_fn drop_fn")),
    # -- section 10: host services --
    "StateStoreVtable": (
        112,
        _seq(
            "state get_fn set_fn delete_fn contains_key_fn get_many_fn set_many_fn "
            "delete_many_fn clear_store_fn list_keys_fn store_exists_fn key_count_fn sync_fn "
            "drop_fn"
        ),
    ),
    "FfiCredentials": (32, _seq("credential_type field1 field2 field3")),
    "FfiCredentialsResult": (48, [("error_code", 0), ("error_msg", 8), ("credentials", 16)]),
    "IdentityProviderVtable": (32, _seq("state get_credentials_fn clone_fn drop_fn")),
    "SecretStoreProviderVtable": (24, _seq("state get_secret_fn drop_fn")),
    "SnapshotFetcherVtable": (24, _seq("state fetch_snapshot_fn drop_fn")),
    "FfiWalAppendResult": (24, [("sequence", 0), ("error_code", 8), ("error_msg", 16)]),
    "FfiWalU64Result": (24, [("value", 0), ("error_code", 8), ("error_msg", 16)]),
    "FfiWalOptionalU64Result": (
        24,
        [("value", 0), ("has_value", 8), ("error_code", 12), ("error_msg", 16)],
    ),
    "FfiWalEntry": (16, [("sequence", 0), ("event", 8)]),
    "FfiWalReadResult": (
        40,
        [("entries", 0), ("count", 8), ("capacity", 16), ("error_code", 24), ("error_msg", 32)],
    ),
    "WalProviderVtable": (
        88,
        _seq(
            "state register_fn append_fn read_from_fn prune_up_to_fn head_sequence_fn "
            "oldest_sequence_fn event_count_fn delete_wal_fn free_read_result_fn drop_fn"
        ),
    ),
    # -- section 8: reaction recovery --
    "FfiCheckpoint": (16, [("sequence", 0), ("config_hash", 8)]),
    "FfiCheckpointResult": (48, [("found", 0), ("checkpoint", 8), ("error", 24)]),
    "FfiSnapshotIterator": (24, _seq("iter_ctx next_fn drop_fn")),
    "FfiOutboxIterator": (24, _seq("iter_ctx next_fn drop_fn")),
    "FfiSnapshotIteratorResponse": (
        64,
        [("iterator", 0), ("as_of_sequence", 24), ("config_hash", 32), ("error", 40)],
    ),
    "FfiOutboxIteratorResponse": (
        64,
        [("iterator", 0), ("latest_sequence", 24), ("config_hash", 32), ("error", 40)],
    ),
    "FfiBootstrapContext": (
        64,
        [
            ("query_id", 0),
            ("is_reset", 16),
            ("callback_ctx", 24),
            ("fetch_snapshot_fn", 32),
            ("fetch_outbox_fn", 40),
            ("read_checkpoint_fn", 48),
            ("write_checkpoint_fn", 56),
        ],
    ),
    # -- section 6 --
    "FfiRuntimeContext": (
        96,
        [
            ("instance_id", 0),
            ("component_id", 16),
            ("state_store", 32),
            ("log_callback", 40),
            ("log_ctx", 48),
            ("lifecycle_callback", 56),
            ("lifecycle_ctx", 64),
            ("identity_provider", 72),
            ("snapshot_fetcher", 80),
            ("wal_provider", 88),
        ],
    ),
    # -- section 7 --
    "SourceVtable": (
        144,
        _seq(
            "state executor id_fn type_name_fn auto_start_fn dispatch_mode_fn properties_fn "
            "describe_schema_fn start_fn stop_fn status_fn deprovision_fn initialize_fn "
            "subscribe_fn set_bootstrap_provider_fn supports_replay_fn "
            "remove_position_handle_fn drop_fn"
        ),
    ),
    # -- section 8 --
    "ReactionVtable": (
        144,
        _seq(
            "state executor id_fn type_name_fn auto_start_fn query_ids_fn properties_fn "
            "start_fn stop_fn status_fn deprovision_fn initialize_fn start_result_push_fn "
            "is_durable_fn needs_snapshot_on_fresh_start_fn default_recovery_policy_fn "
            "bootstrap_fn drop_fn"
        ),
    ),
    "FfiQueryResult": (24, _seq("payload_ptr payload_len payload_drop_fn")),
    # -- sections 4 and 5: factories and registration --
    "SourcePluginVtable": (64, _seq(_FACTORY.format(create="create_source_fn"))),
    "ReactionPluginVtable": (64, _seq(_FACTORY.format(create="create_reaction_fn"))),
    "BootstrapPluginVtable": (
        64,
        _seq(_FACTORY.format(create="create_bootstrap_provider_fn")),
    ),
    "IdentityProviderPluginVtable": (
        64,
        _seq(_FACTORY.format(create="create_identity_provider_fn")),
    ),
    "SecretStorePluginVtable": (64, _seq(_FACTORY.format(create="create_secret_store_fn"))),
    "FfiPluginRegistration": (
        112,
        _seq(
            "source_plugins source_plugin_count reaction_plugins reaction_plugin_count "
            "bootstrap_plugins bootstrap_plugin_count set_log_callback set_lifecycle_callback "
            "identity_provider_plugins identity_provider_plugin_count secret_store_plugins "
            "secret_store_plugin_count set_config_resolver set_log_level"
        ),
    ),
}

# Every enum of ABI-0.13.md section 2 (and the unchanged ones).
ENUMS: dict[str, dict[str, int]] = {
    "FfiComponentStatus": {
        "FFI_COMPONENT_STATUS_STOPPED": 0,
        "FFI_COMPONENT_STATUS_STARTING": 1,
        "FFI_COMPONENT_STATUS_RUNNING": 2,
        "FFI_COMPONENT_STATUS_STOPPING": 3,
        "FFI_COMPONENT_STATUS_RECONFIGURING": 4,
        "FFI_COMPONENT_STATUS_ERROR": 5,
        "FFI_COMPONENT_STATUS_ADDED": 6,
        "FFI_COMPONENT_STATUS_REMOVED": 7,
    },
    "FfiChangeOp": {
        "FFI_CHANGE_OP_INSERT": 0,
        "FFI_CHANGE_OP_UPDATE": 1,
        "FFI_CHANGE_OP_DELETE": 2,
    },
    "FfiDispatchMode": {"FFI_DISPATCH_MODE_BROADCAST": 0, "FFI_DISPATCH_MODE_CHANNEL": 1},
    "FfiLogLevel": {
        "FFI_LOG_LEVEL_ERROR": 0,
        "FFI_LOG_LEVEL_WARN": 1,
        "FFI_LOG_LEVEL_INFO": 2,
        "FFI_LOG_LEVEL_DEBUG": 3,
        "FFI_LOG_LEVEL_TRACE": 4,
    },
    "FfiLogLevelFilter": {
        "FFI_LOG_FILTER_OFF": 0,
        "FFI_LOG_FILTER_ERROR": 1,
        "FFI_LOG_FILTER_WARN": 2,
        "FFI_LOG_FILTER_INFO": 3,
        "FFI_LOG_FILTER_DEBUG": 4,
        "FFI_LOG_FILTER_TRACE": 5,
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

# Plain integer constants of the header (section 7 payload cap, section 8 policies, ...).
CONSTANTS = {
    "DRASI_MAX_FFI_PAYLOAD_BYTES": 268_435_456,
    "DRASI_MAX_RESUME_POSITION_BYTES": 65_536,
    "DRASI_CREATE_OK": 0,
    "DRASI_CREATE_ERROR": 1,
    "DRASI_RECOVERY_STRICT": 0,
    "DRASI_RECOVERY_AUTO_RESET": 1,
    "DRASI_RECOVERY_AUTO_SKIP_GAP": 2,
    "DRASI_WAL_REJECT_INCOMING": 0,
    "DRASI_WAL_OVERWRITE_OLDEST": 1,
    "DRASI_WAL_APPEND_CAPACITY_EXHAUSTED": 1,
    "DRASI_WAL_APPEND_OTHER_ERROR": 2,
}

STR = "struct FfiStr"
# The signatures that changed or are new in 0.13, as cffi spells them.
SIGNATURES: dict[tuple[str, str], str] = {
    ("SourceVtable", "subscribe_fn"): (
        "struct FfiSubscriptionResponse *(*)(void *, struct FfiStr, _Bool, struct FfiStr, "
        "struct FfiStr, struct FfiStr, uint8_t *, uint32_t, _Bool)"
    ),
    ("SourceVtable", "properties_fn"): "struct FfiOwnedStr(*)(void *)",
    ("SourceVtable", "describe_schema_fn"): "struct FfiOwnedStr(*)(void *)",
    ("SourceVtable", "supports_replay_fn"): "_Bool(*)(void *)",
    ("SourceVtable", "remove_position_handle_fn"): "struct FfiResult(*)(void *, struct FfiStr)",
    ("ReactionVtable", "start_result_push_fn"): (
        "void(*)(void *, void *(*)(void *, void *), void *)"
    ),
    ("ReactionVtable", "default_recovery_policy_fn"): "uint8_t(*)(void *)",
    ("ReactionVtable", "bootstrap_fn"): (
        "struct FfiResult(*)(void *, struct FfiBootstrapContext *)"
    ),
    ("SourcePluginVtable", "create_source_fn"): (
        "struct FfiCreateResult(*)(void *, struct FfiStr, struct FfiStr, _Bool)"
    ),
    ("ReactionPluginVtable", "create_reaction_fn"): (
        "struct FfiCreateResult(*)(void *, struct FfiStr, struct FfiStr, struct FfiStr, _Bool)"
    ),
    ("BootstrapPluginVtable", "create_bootstrap_provider_fn"): (
        "struct FfiCreateResult(*)(void *, struct FfiStr, struct FfiStr)"
    ),
    ("IdentityProviderPluginVtable", "create_identity_provider_fn"): (
        "struct IdentityProviderVtable *(*)(void *, struct FfiStr)"
    ),
    ("SecretStorePluginVtable", "create_secret_store_fn"): (
        "struct SecretStoreProviderVtable *(*)(void *, struct FfiStr)"
    ),
    ("SecretStoreProviderVtable", "get_secret_fn"): (
        "struct FfiGetSecretResult(*)(void *, struct FfiStr)"
    ),
    ("IdentityProviderVtable", "get_credentials_fn"): (
        "struct FfiCredentialsResult(*)(void *, uint8_t *, size_t)"
    ),
    ("BootstrapProviderVtable", "bootstrap_fn"): (
        "struct FfiBootstrapStream *(*)(void *, struct FfiStr, struct FfiStr *, size_t, "
        "struct FfiStr *, size_t, struct FfiStr, struct FfiStr, struct FfiStr)"
    ),
    ("FfiBootstrapResultReceiver", "start_fn"): (
        "void(*)(void *, void(*)(void *, struct FfiBootstrapResult *), void *)"
    ),
    ("FfiSourceEvent", "payload_drop_fn"): "void(*)(uint8_t *, size_t)",
    ("FfiSourceEvent", "op"): "enum FfiChangeOp",
    ("FfiBootstrapEvent", "sequence"): "uint64_t",
    ("FfiQueryResult", "payload_drop_fn"): "void(*)(uint8_t *, size_t)",
    ("FfiPluginRegistration", "set_config_resolver"): (
        "void(*)(void *, struct FfiGetSecretResult(*)(void *, struct FfiStr))"
    ),
    ("FfiPluginRegistration", "set_log_level"): "void(*)(enum FfiLogLevelFilter)",
    ("FfiRuntimeContext", "snapshot_fetcher"): "struct SnapshotFetcherVtable *",
    ("FfiRuntimeContext", "wal_provider"): "struct WalProviderVtable *",
    ("WalProviderVtable", "register_fn"): (
        "struct FfiResult(*)(void *, struct FfiStr, uint64_t, uint8_t)"
    ),
    ("FfiBootstrapContext", "write_checkpoint_fn"): (
        "struct FfiResult(*)(void *, struct FfiCheckpoint)"
    ),
}

TYPEDEFS = {
    "FfiBytesDropFn": "void(*)(uint8_t *, size_t)",
    "FfiResultPushCallbackFn": "void *(*)(void *, void *)",
    "FfiBootstrapResultCallbackFn": "void(*)(void *, struct FfiBootstrapResult *)",
    "ConfigResolverFn": "struct FfiGetSecretResult(*)(void *, struct FfiStr)",
    "FfiChangePushCallbackFn": "_Bool(*)(void *, struct FfiSourceEvent *)",
    "FfiBootstrapPushCallbackFn": "_Bool(*)(void *, struct FfiBootstrapEvent *)",
    "FfiBootstrapFetchSnapshotFn": "struct FfiSnapshotIteratorResponse(*)(void *)",
    "FfiBootstrapFetchOutboxFn": "struct FfiOutboxIteratorResponse(*)(void *, uint64_t)",
    "FfiBootstrapReadCheckpointFn": "struct FfiCheckpointResult(*)(void *)",
    "FfiBootstrapWriteCheckpointFn": "struct FfiResult(*)(void *, struct FfiCheckpoint)",
    "DrasiPluginMetadataFn": "struct PluginMetadata *(*)()",
    "DrasiPluginInitFn": "struct FfiPluginRegistration *(*)()",
    "DrasiPluginShutdownFn": "void(*)()",
}


def test_table_is_complete_and_consistent() -> None:
    # 48 structs and 7 enums, as the specification counts them.
    assert len(LAYOUT) == 48
    assert len(ENUMS) == 7
    for name, (size, fields) in LAYOUT.items():
        offsets = [o for _, o in fields]
        assert offsets[0] == 0, name
        assert offsets == sorted(set(offsets)), name
        assert offsets[-1] < size, name
        assert len({f for f, _ in fields}) == len(fields), name


# ---- (a) cffi ABI mode, from the stripped header --------------------------


@pytest.fixture(scope="module")
def abi_ffi() -> FFI:
    builder = build_ffi013_module()
    ffi = FFI()
    ffi.cdef(builder.header_cdef(builder.header_text()))
    return ffi


def _check_ffi(ffi: Any, name: str) -> None:
    size, fields = LAYOUT[name]
    assert [f for f, _ in ffi.typeof(name).fields] == [f for f, _ in fields], name
    assert ffi.sizeof(name) == size, name
    for field, offset in fields:
        assert ffi.offsetof(name, field) == offset, f"{name}.{field}"


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_cffi_abi_mode_layout(abi_ffi: FFI, name: str) -> None:
    _check_ffi(abi_ffi, name)


def test_cffi_declares_exactly_the_tabled_structs(abi_ffi: FFI) -> None:
    _typedefs, structs, _unions = abi_ffi.list_types()
    assert set(structs) == set(LAYOUT)


def _plain(cname: str) -> str:
    """A C type name without ``struct`` / ``enum`` keywords: cffi's ABI mode
    spells typedef'd structs by their typedef name, API mode by their tag."""
    return re.sub(r"\b(struct|enum) ", "", cname)


@pytest.mark.parametrize("key", sorted(SIGNATURES))
def test_changed_signatures(abi_ffi: FFI, key: tuple[str, str]) -> None:
    struct_name, field = key
    types = {f: t.type.cname for f, t in abi_ffi.typeof(struct_name).fields}
    assert _plain(types[field]) == _plain(SIGNATURES[key])


@pytest.mark.parametrize("name", sorted(TYPEDEFS))
def test_typedefs(abi_ffi: FFI, name: str) -> None:
    assert _plain(abi_ffi.typeof(name).cname) == _plain(TYPEDEFS[name])


@pytest.mark.parametrize("enum_name", sorted(ENUMS))
def test_enum_values(abi_ffi: FFI, enum_name: str) -> None:
    assert abi_ffi.sizeof(enum_name) == 4
    assert dict(abi_ffi.typeof(enum_name).relements) == ENUMS[enum_name]


def test_constants(abi_ffi: FFI) -> None:
    lib = abi_ffi.dlopen(None)
    for name, value in CONSTANTS.items():
        assert getattr(lib, name) == value, name


def test_no_0_4_leftovers(abi_ffi: FFI) -> None:
    # FfiBootstrapSender is gone in 0.13; the 0.4 payload extension is not part of it.
    _, structs, _ = abi_ffi.list_types()
    assert "FfiBootstrapSender" not in structs
    assert "DrasiPayload" not in structs


# ---- (b) a C program printing sizeof / offsetof ---------------------------


def _probe_source() -> str:
    lines = [
        '#include "drasi_plugin_0_13.h"',
        "#include <stddef.h>",
        "#include <stdio.h>",
        "int main(void) {",
    ]
    for name, (_, fields) in LAYOUT.items():
        lines.append(f'    printf("{name} %zu\\n", sizeof({name}));')
        for field, _ in fields:
            lines.append(f'    printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    for enum_name, values in ENUMS.items():
        lines.append(f'    printf("{enum_name} %zu\\n", sizeof({enum_name}));')
        for constant in values:
            lines.append(f'    printf("{constant} %d\\n", (int){constant});')
    for constant in CONSTANTS:
        lines.append(f'    printf("{constant} %d\\n", (int){constant});')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _expected_probe_output() -> dict[str, int]:
    expected: dict[str, int] = {}
    for name, (size, fields) in LAYOUT.items():
        expected[name] = size
        for field, offset in fields:
            expected[f"{name}.{field}"] = offset
    for enum_name, values in ENUMS.items():
        expected[enum_name] = 4
        expected.update(values)
    expected.update(CONSTANTS)
    return expected


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_compiler_layout(tmp_path: Path) -> None:
    src = tmp_path / "probe.c"
    exe = tmp_path / "probe"
    src.write_text(_probe_source(), encoding="utf-8")
    cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(HEADER_013.parent)]
    proc = subprocess.run(
        [*cmd, "-o", str(exe), str(src)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    actual = {k: int(v) for k, v in (line.split() for line in run.stdout.splitlines())}
    assert actual == _expected_probe_output()


# ---- (c) the compiled API-mode module --------------------------------------


@pytest.fixture(scope="module")
def ffi013(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compile_ffi013(tmp_path_factory.mktemp("ffi013"))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_api_mode_module_layout(ffi013: Any) -> None:
    for name in LAYOUT:
        _check_ffi(ffi013.ffi, name)
    for values in ENUMS.values():
        for constant, value in values.items():
            assert getattr(ffi013.lib, constant) == value
    for constant, value in CONSTANTS.items():
        assert getattr(ffi013.lib, constant) == value


# ---- the header as a plugin author compiles it ----------------------------

_PLUGIN_TU = """
#include "drasi_plugin_0_13.h"
#include <stddef.h>

{assert_kw}(sizeof(FfiPluginRegistration) == 112, "registration");
{assert_kw}(offsetof(FfiPluginRegistration, set_log_level) == 104, "set_log_level");
{assert_kw}(sizeof(FfiRuntimeContext) == 96, "runtime context");
{assert_kw}(sizeof(SourceVtable) == 144, "source vtable");
{assert_kw}(offsetof(SourceVtable, subscribe_fn) == 104, "subscribe_fn");
{assert_kw}(sizeof(ReactionVtable) == 144, "reaction vtable");
{assert_kw}(offsetof(ReactionVtable, bootstrap_fn) == 128, "reaction bootstrap_fn");
{assert_kw}(sizeof(FfiSubscriptionResponse) == 80, "subscription response");
{assert_kw}(sizeof(FfiSourceEvent) == 40, "source event");
{assert_kw}(sizeof(FfiBootstrapEvent) == 40, "bootstrap event");
{assert_kw}(sizeof(FfiBootstrapResult) == 56, "bootstrap result");
{assert_kw}(offsetof(FfiWalOptionalU64Result, error_code) == 12, "wal optional");
{assert_kw}(offsetof(FfiCheckpointResult, error) == 24, "checkpoint result");
{assert_kw}(sizeof(FfiLogLevelFilter) == 4, "enum size");
{assert_kw}(FFI_COMPONENT_STATUS_REMOVED == 7, "status 7");
{assert_kw}(DRASI_MAX_FFI_PAYLOAD_BYTES == 268435456, "payload cap");

static const PluginMetadata metadata = {{
    {{DRASI_SDK_VERSION_0_13, sizeof(DRASI_SDK_VERSION_0_13) - 1}},
    {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}}, {{"", 0}},
}};
const PluginMetadata *drasi_plugin_metadata(void) {{ return &metadata; }}
FfiPluginRegistration *drasi_plugin_init(void) {{ return NULL; }}
void drasi_plugin_shutdown(void) {{ }}
void *sentinel_value(void) {{ return DRASI_RESULT_PUSH_EXIT_SENTINEL; }}
"""


def _compile(compiler: str, flags: list[str], source: str, suffix: str, tmp_path: Path) -> None:
    src = tmp_path / f"plugin013{suffix}"
    src.write_text(source, encoding="utf-8")
    cmd = [
        compiler,
        *flags,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-I",
        str(HEADER_013.parent),
        "-c",
        str(src),
        "-o",
        str(tmp_path / f"plugin013{suffix}.o"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_header_compiles_as_c11(tmp_path: Path) -> None:
    _compile("cc", ["-std=c11"], _PLUGIN_TU.format(assert_kw="_Static_assert"), ".c", tmp_path)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_header_compiles_as_cxx(tmp_path: Path) -> None:
    _compile("g++", ["-std=c++11"], _PLUGIN_TU.format(assert_kw="static_assert"), ".cpp", tmp_path)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_header_asserts_can_fail(tmp_path: Path) -> None:
    source = '#include "drasi_plugin_0_13.h"\n#include <stddef.h>\n' + (
        '_Static_assert(sizeof(SourceVtable) == 112, "wrong on purpose");\n'
    )
    with pytest.raises(AssertionError, match="wrong on purpose"):
        _compile("cc", ["-std=c11"], source, ".c", tmp_path)


# ---- the C helpers of drasi_host._ffi013 ------------------------------------


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_query_result_helper_owns_a_copy(ffi013: Any) -> None:
    ffi, lib = ffi013.ffi, ffi013.lib
    data = b"\x81\xa1k\x01"
    result = lib.dh13_query_result_new(data, len(data))
    assert result != ffi.NULL
    assert ffi.buffer(result.payload_ptr, result.payload_len)[:] == data
    assert result.payload_drop_fn != ffi.NULL
    result.payload_drop_fn(ffi.cast("uint8_t *", result.payload_ptr), result.payload_len)
    lib.free(result)
    empty = lib.dh13_query_result_new(ffi.NULL, 0)
    assert empty.payload_len == 0 and empty.payload_ptr != ffi.NULL
    empty.payload_drop_fn(ffi.cast("uint8_t *", empty.payload_ptr), 0)
    lib.free(empty)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_event_release_helpers(ffi013: Any) -> None:
    ffi, lib = ffi013.ffi, ffi013.lib
    drop = ffi.addressof(lib, "dh13_bytes_free")
    for kind, release in (
        ("FfiSourceEvent", lib.dh13_source_event_release),
        ("FfiBootstrapEvent", lib.dh13_bootstrap_event_release),
    ):
        event = ffi.cast(f"{kind} *", lib.malloc(ffi.sizeof(kind)))
        event.payload_ptr = ffi.cast("uint8_t *", lib.malloc(3))
        event.payload_len = 3
        event.payload_drop_fn = drop
        assert release(event) == 0
        # A NULL drop function with a payload: leaked, reported, no crash.
        leaky = ffi.new("uint8_t[4]")
        event = ffi.cast(f"{kind} *", lib.malloc(ffi.sizeof(kind)))
        event.payload_ptr = leaky
        event.payload_len = 4
        event.payload_drop_fn = ffi.NULL
        assert release(event) == 1
        assert release(ffi.NULL) == 0


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_log_filter_clamp(ffi013: Any) -> None:
    lib = ffi013.lib
    assert [lib.dh13_log_filter_clamp(v) for v in (-3, 0, 3, 5, 6, 99)] == [0, 0, 3, 5, 5, 5]
