/* services013.c - the identity-provider factory FX13_PREFIX "-identity" and
 * the secret-store factory FX13_PREFIX "-secrets" (ABI-0.13.md section 4).
 *
 * Identity config: {"token": T, "token_secret": NAME, "mode": M}.
 * "token_secret" takes T from the host's config resolver (a Secret reference
 * named NAME), as an SDK plugin resolves Secret config values; without an
 * answer the create fails with the reason in the log.  get_credentials_fn returns
 * token credentials (field1 "fixture-user", field2 "T|<context json>"), or an
 * error with text when T is "fail".  Every state (created or cloned) is
 * counted in identity_states_alive until its drop_fn.
 * Secret-store config: {"prefix": P, "mode": M}.  get_secret_fn(name) returns
 * P + name; "missing" fails with text; "empty" succeeds with a NULL value.
 * Mode "nullptr" makes either create function return NULL.
 */
#define _POSIX_C_SOURCE 200809L
#include "fx013.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Fx13Identity {
    char token[64];
} Fx13Identity;

static FfiCredentialsResult id_get(const void *state, const uint8_t *ctx_json, size_t ctx_len)
{
    const Fx13Identity *id = state;
    FfiCredentialsResult r;
    memset(&r, 0, sizeof r);
    if (FX13_MODE_IS(id->token, "fail")) {
        r.error_code = 1;
        r.error_msg = fx13_printf("%s", FX13_PREFIX "-identity: credentials refused");
        return r;
    }
    char *ctx = fx13_strndup(ctx_json != NULL ? (const char *)ctx_json : "",
                             ctx_json != NULL ? ctx_len : 0);
    r.credentials.credential_type = FFI_CREDENTIAL_TOKEN;
    r.credentials.field1 = fx13_printf("%s", "fixture-user");
    r.credentials.field2 = fx13_printf("%s|%s", id->token, ctx ? ctx : "");
    free(ctx);
    FX13_ADD(credentials_served, 1);
    return r;
}

static void *id_clone(const void *state)
{
    Fx13Identity *copy = malloc(sizeof *copy);
    if (copy == NULL)
        return NULL;
    *copy = *(const Fx13Identity *)state;
    FX13_ADD(identity_states_alive, 1);
    return copy;
}

static void id_drop(void *state)
{
    free(state);
    FX13_ADD(identity_states_alive, -1);
}

/* Resolve the Secret `name` through the host's config resolver into out;
 * false (reason logged) when it cannot be resolved. */
static bool id_resolve(const char *name, char *out, size_t cap)
{
    ConfigResolverFn cb;
    const void *ctx;
    fx13_resolver(&cb, &ctx);
    if (cb == NULL) {
        fx13_log(FFI_LOG_LEVEL_ERROR, "identity", "identity provider refused: no config resolver");
        return false;
    }
    char *json = fx13_printf("{\"kind\":\"Secret\",\"name\":\"%s\"}", name);
    if (json == NULL)
        return false;
    FfiGetSecretResult r = cb(ctx, fx13_str(json));
    free(json);
    FX13_ADD(resolver_calls, 1);
    bool ok = r.error_code == 0;
    if (ok) {
        snprintf(out, cap, "%s", r.value != NULL ? r.value : "");
    } else {
        FX13_ADD(resolver_failures, 1);
        char *text = fx13_printf("identity provider refused: secret not resolved: %s",
                                 r.error_msg != NULL ? r.error_msg : "unknown error");
        fx13_log(FFI_LOG_LEVEL_ERROR, "identity", text != NULL ? text : "secret not resolved");
        free(text);
    }
    free(r.error_msg);
    free(r.value);
    return ok;
}

static IdentityProviderVtable *fx13_create_identity(void *state, FfiStr config_json)
{
    char mode[32] = "normal";
    (void)state;
    fx13_cfg_str(config_json, "mode", mode, sizeof mode);
    if (FX13_MODE_IS(mode, "nullptr")) {
        fx13_log(FFI_LOG_LEVEL_ERROR, "identity", "identity provider refused: mode nullptr");
        return NULL;
    }
    Fx13Identity *id = calloc(1, sizeof *id);
    IdentityProviderVtable *vt = calloc(1, sizeof *vt);
    if (id == NULL || vt == NULL) {
        free(id);
        free(vt);
        return NULL;
    }
    snprintf(id->token, sizeof id->token, "%s", "t0k3n");
    fx13_cfg_str(config_json, "token", id->token, sizeof id->token);
    char secret[64];
    if (fx13_cfg_str(config_json, "token_secret", secret, sizeof secret)
        && !id_resolve(secret, id->token, sizeof id->token)) {
        free(id);
        free(vt);
        return NULL;
    }
    vt->state = id;
    vt->get_credentials_fn = id_get;
    vt->clone_fn = id_clone;
    vt->drop_fn = id_drop;
    FX13_ADD(identity_states_alive, 1);
    fx13_log(FFI_LOG_LEVEL_DEBUG, "identity", "identity provider created");
    return vt;
}

typedef struct Fx13Secrets {
    char prefix[64];
} Fx13Secrets;

static FfiGetSecretResult sec_get(const void *state, FfiStr name)
{
    const Fx13Secrets *s = state;
    FfiGetSecretResult r = {0, NULL, NULL};
    char *key = fx13_strndup(name.ptr ? name.ptr : "", name.len);
    if (key == NULL || FX13_MODE_IS(key, "missing")) {
        r.error_code = 1;
        r.error_msg = fx13_printf(FX13_PREFIX "-secrets: no secret named %s", key ? key : "?");
        FX13_ADD(secret_errors, 1);
    } else if (!FX13_MODE_IS(key, "empty")) {
        r.value = fx13_printf("%s%s", s->prefix, key);
        FX13_ADD(secrets_served, 1);
    } else {
        FX13_ADD(secrets_served, 1);
    }
    free(key);
    return r;
}

static void sec_drop(void *state)
{
    free(state);
    FX13_ADD(objects_dropped, 1);
}

static SecretStoreProviderVtable *fx13_create_secrets(void *state, FfiStr config_json)
{
    char mode[32] = "normal";
    (void)state;
    fx13_cfg_str(config_json, "mode", mode, sizeof mode);
    if (FX13_MODE_IS(mode, "nullptr"))
        return NULL;
    Fx13Secrets *s = calloc(1, sizeof *s);
    SecretStoreProviderVtable *vt = calloc(1, sizeof *vt);
    if (s == NULL || vt == NULL) {
        free(s);
        free(vt);
        return NULL;
    }
    snprintf(s->prefix, sizeof s->prefix, "%s", "s-");
    fx13_cfg_str(config_json, "prefix", s->prefix, sizeof s->prefix);
    vt->state = s;
    vt->get_secret_fn = sec_get;
    vt->drop_fn = sec_drop;
    FX13_ADD(objects_created, 1);
    return vt;
}

static FfiStr if_kind(const void *s) { (void)s; return fx13_str(FX13_PREFIX "-identity"); }
static FfiStr ss_kind(const void *s) { (void)s; return fx13_str(FX13_PREFIX "-secrets"); }
static FfiStr xf_version(const void *s) { (void)s; return fx13_str("1.0.0"); }
static FfiOwnedStr xf_schema(const void *s) { (void)s; return fx13_owned("{\"type\":\"object\"}"); }
static FfiStr xf_schema_name(const void *s) { (void)s; return fx13_str("fixture013.ServiceConfig"); }
static void xf_drop(void *s) { (void)s; FX13_ADD(factories_dropped, 1); }

void fx13_identity_factory(IdentityProviderPluginVtable *vt)
{
    vt->kind_fn = if_kind;
    vt->config_version_fn = xf_version;
    vt->config_schema_json_fn = xf_schema;
    vt->config_schema_name_fn = xf_schema_name;
    vt->create_identity_provider_fn = fx13_create_identity;
    vt->drop_fn = xf_drop;
}

void fx13_secrets_factory(SecretStorePluginVtable *vt)
{
    vt->kind_fn = ss_kind;
    vt->config_version_fn = xf_version;
    vt->config_schema_json_fn = xf_schema;
    vt->config_schema_name_fn = xf_schema_name;
    vt->create_secret_store_fn = fx13_create_secrets;
    vt->drop_fn = xf_drop;
}
