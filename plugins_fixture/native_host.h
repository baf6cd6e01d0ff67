/*
 * native_host.h - small pieces shared by the native baseline hosts
 * (chan_native.c, native_consumer.c): a monotonic clock, an FfiStr over a
 * C string, and a fatal-error exit.  Define NATIVE_HOST_NAME (the program
 * name printed before messages) before including this header.
 */
#ifndef DRASI_NATIVE_HOST_H
#define DRASI_NATIVE_HOST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drasi_plugin.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static FfiStr s_(const char *s) {
    FfiStr r = {s, strlen(s)};
    return r;
}

static void die(const char *msg) {
    fprintf(stderr, NATIVE_HOST_NAME ": %s\n", msg);
    exit(1);
}

#endif
