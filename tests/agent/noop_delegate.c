/* A TFLite external delegate that loads like a vendor NPU delegate but takes no ops, so every op falls back
 * to the CPU: the case `cpu_fallback` exists to expose. With the option fail=<message> it refuses to load and
 * reports <message> through the external-delegate error callback, as a delegate without its driver does.
 *
 * Only the TfLiteDelegate layout is needed (tensorflow/lite/core/c/common.h); Prepare returning kTfLiteOk
 * without calling ReplaceNodeSubsetsWithDelegateKernels means "I take nothing". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

static int take_nothing(void* context, TfLiteDelegate* delegate) { return 0; /* kTfLiteOk */ }

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  for (size_t i = 0; i < count; i++) {
    if (strcmp(keys[i], "fail") == 0) {
      report_error(values[i]);
      return NULL;
    }
  }
  TfLiteDelegate* delegate = calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = take_nothing;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
