# Included by CMake at whisper.cpp's project() (CMAKE_PROJECT_whisper.cpp_INCLUDE, set in
# .cargo/config.toml), this patches whisper-rs-sys's build copy of whisper.cpp so that a
# cancelled transcription stops working within milliseconds (ADR 024). whisper.cpp 1.8.3
# checks its abort callback only between encoder passes and decoder steps: an encoder pass of
# a 30 s window (1–5 s on one core), the language detection pass and the spectrogram of the
# whole file (seconds per ten minutes of audio on one core) run to their end after a cancel.
#
# The patch:
# - keeps the abort callback of the whisper_full call running on this thread in a
#   thread-local (set and restored by whisper_full_with_state);
# - hands it to every backend of every graph computation (the CPU backend checks it after each
#   graph node), so encoder passes, language detection and decoder steps stop mid-graph;
# - checks it in the spectrogram loop, whose helper threads stop through a shared flag.
#
# Every edit is anchored on whisper.cpp's text and fails the build when an anchor is missing
# (a new whisper-rs-sys must be looked at, never silently left unpatched). The edit is
# idempotent: the build copy may be configured again.

set(_mj_file "${CMAKE_CURRENT_SOURCE_DIR}/src/whisper.cpp")
if(NOT EXISTS "${_mj_file}")
  return()
endif()
file(READ "${_mj_file}" _mj_src)
string(FIND "${_mj_src}" "mediajobs abort patch" _mj_done)
if(NOT _mj_done EQUAL -1)
  return()
endif()

function(_mj_replace old new)
  string(FIND "${_mj_src}" "${old}" _first)
  string(FIND "${_mj_src}" "${old}" _last REVERSE)
  if(_first EQUAL -1)
    message(FATAL_ERROR "whisper-abort.cmake: anchor not found in ${_mj_file}:\n${old}")
  endif()
  if(NOT _first EQUAL _last)
    message(FATAL_ERROR "whisper-abort.cmake: anchor not unique in ${_mj_file}:\n${old}")
  endif()
  string(REPLACE "${old}" "${new}" _out "${_mj_src}")
  set(_mj_src "${_out}" PARENT_SCOPE)
endfunction()

# The thread-local abort callback, before the graph helpers.
_mj_replace(
"static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,"
"// mediajobs abort patch (crates/processor/cmake/whisper-abort.cmake): the abort callback of
// the whisper_full call running on this thread, checked inside every graph computation.
struct mj_abort_t { ggml_abort_callback cb = nullptr; void * data = nullptr; };
static thread_local mj_abort_t mj_abort;
static bool mj_aborted() { return mj_abort.cb != nullptr && mj_abort.cb(mj_abort.data); }

static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,")

# Every backend of a scheduled computation gets it (nullptr outside whisper_full).
_mj_replace(
"            fn_set_n_threads(backend, n_threads);
        }
    }

    const bool t = (ggml_backend_sched_graph_compute(sched, graph) == GGML_STATUS_SUCCESS);"
"            fn_set_n_threads(backend, n_threads);
        }

        auto * fn_set_abort = (ggml_backend_set_abort_callback_t) ggml_backend_reg_get_proc_address(reg, \"ggml_backend_set_abort_callback\");
        if (fn_set_abort) {
            fn_set_abort(backend, mj_abort.cb, mj_abort.data);
        }
    }

    const bool t = (ggml_backend_sched_graph_compute(sched, graph) == GGML_STATUS_SUCCESS);")

# The spectrogram: the calling thread (ith 0) checks every 256 of its frames; the helper
# threads stop through the shared flag.
_mj_replace(
"                                              const whisper_filters & filters, whisper_mel & mel) {
    std::vector<float> fft_in(frame_size * 2, 0.0);"
"                                              const whisper_filters & filters, whisper_mel & mel,
                                              std::atomic<bool> * mj_stop) {
    std::vector<float> fft_in(frame_size * 2, 0.0);")
_mj_replace(
"    for (; i < std::min(n_samples / frame_step + 1, mel.n_len); i += n_threads) {
        const int offset = i * frame_step;"
"    for (; i < std::min(n_samples / frame_step + 1, mel.n_len); i += n_threads) {
        if (mj_stop->load(std::memory_order_relaxed)) {
            return;
        }
        if (ith == 0 && ((i / n_threads) % 256) == 0 && mj_aborted()) {
            mj_stop->store(true, std::memory_order_relaxed);
            return;
        }
        const int offset = i * frame_step;")
_mj_replace(
"    {
        std::vector<std::thread> workers(n_threads - 1);"
"    std::atomic<bool> mj_stop{false};
    {
        std::vector<std::thread> workers(n_threads - 1);")
_mj_replace(
"                    std::cref(filters), std::ref(mel));"
"                    std::cref(filters), std::ref(mel), &mj_stop);")
_mj_replace(
"frame_size, frame_step, n_threads, filters, mel);

        for (int iw = 0; iw < n_threads - 1; ++iw) {
            workers[iw].join();
        }
    }"
"frame_size, frame_step, n_threads, filters, mel, &mj_stop);

        for (int iw = 0; iw < n_threads - 1; ++iw) {
            workers[iw].join();
        }
    }
    if (mj_stop.load()) {
        return false;
    }")

# whisper_full_with_state sets it for its duration (language detection included).
_mj_replace(
"    struct whisper_full_params   params,
                   const float * samples,
                           int   n_samples) {
    // clear old results"
"    struct whisper_full_params   params,
                   const float * samples,
                           int   n_samples) {
    struct mj_abort_guard {
        mj_abort_t prev;
        explicit mj_abort_guard(mj_abort_t next) : prev(mj_abort) { mj_abort = next; }
        ~mj_abort_guard() { mj_abort = prev; }
    } mj_guard(mj_abort_t{params.abort_callback, params.abort_callback_user_data});
    // clear old results")

file(WRITE "${_mj_file}" "${_mj_src}")
message(STATUS "whisper-abort.cmake: patched ${_mj_file}")
