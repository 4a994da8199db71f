/* A libpcaudio.so.0 that plays nothing, for the espeak-ng that tools/device_bundle.sh packs.
 *
 * Debian's libespeak-ng.so.1 links libpcaudio, which pulls PulseAudio, ALSA, X11 and systemd
 * libraries that the lent GPU image does not have. lmplug runs `espeak-ng --stdout` only (the
 * WAV goes to a pipe; no audio device is ever opened), so these entry points are never reached
 * there; if one is, it fails the way pcaudio does without a device (NULL object, an error code).
 * tools/device_bundle.sh checks that the bundled espeak-ng writes the same bytes as the system's.
 *
 * Build: gcc -shared -fPIC -O2 -Wl,-soname,libpcaudio.so.0 -o libpcaudio.so.0 tools/pcaudio_stub.c
 */
#include <stddef.h>
#include <stdint.h>

struct audio_object;

struct audio_object *create_audio_device_object(const char *device, const char *application_name,
                                                const char *description) {
  (void)device; (void)application_name; (void)description;
  return NULL;
}

int audio_object_open(struct audio_object *object, int format, uint32_t rate, uint8_t channels) {
  (void)object; (void)format; (void)rate; (void)channels;
  return -1;
}

void audio_object_close(struct audio_object *object) { (void)object; }

void audio_object_destroy(struct audio_object *object) { (void)object; }

int audio_object_write(struct audio_object *object, const void *data, size_t bytes) {
  (void)object; (void)data; (void)bytes;
  return -1;
}

int audio_object_drain(struct audio_object *object) { (void)object; return 0; }

int audio_object_flush(struct audio_object *object) { (void)object; return 0; }

const char *audio_object_strerror(struct audio_object *object, int error) {
  (void)object; (void)error;
  return "no audio output in this build (lmplug's device bundle: espeak-ng --stdout only)";
}
