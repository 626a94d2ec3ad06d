// Tile sizes, modes and launch arguments of contrastive_tc.cuh's tile_kernel (that file
// describes the kernel); shared by the kernel and its launchers in contrastive.cu.
#pragma once

#include <cstdint>

#include "common/cuda_types.cuh"

namespace af2::contrastive_tc {

constexpr int kBM = 64, kBN = 64, kDK = 64, kWarps = 8, kThreads = kWarps * 32;
constexpr int kLD =
    kDK + 8;  // smem row stride (elements): rows 144 bytes apart, ldmatrix conflict-free
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// kFusedAudio / kFusedText: single-process batches (audio_all is audio, text_all is text, offset
// 0), where a2t's query side and t2a's key side share the tile audio x text (and a2t's key side and
// t2a's query side its transpose): one kernel owns the audio rows and sums both directions' dS
// (d_audio in full, plus d(scale) of every score), one owns the text rows (d_text in full); the
// launcher zeroes d_audio_all and d_text_all. 2 score sweeps + 2 products instead of 4 + 4.
enum Mode : int {
  kLse = 0,
  kLseExcl = 1,
  kA2TQuery = 2,
  kA2TKey = 3,
  kT2AQuery = 4,
  kT2AKey = 5,
  kFusedAudio = 6,
  kFusedText = 7
};

struct TileArgs {
  const void* X;  // own rows (nx, D)
  const void* Y;  // other rows (ny, D)
  int nx, ny, D;
  int x_div, x_add, y_div, y_add;  // group of a row: row / div + add
  const float* scale;              // the logit scale s (device)
  float* lse;                      // LSE modes: (nx), natural log
  const float2* qstat_own;    // gradient modes, per own row as a query: (coefficient, lse * log2 e)
  const float2* qstat_other;  // per other row as a query (key-side and fused modes)
  const float* ga;            // a2t: grad of the a2t terms (B M)
  const float* pair_lse;      // a2t: (B M)
  int pos_shift;              // a2t: pair index of a positive = key row - pos_shift (offset * M)
  const unsigned* nu_bits;    // gradient modes: the normaliser nu as float bits (0 means 1)
  void* out;                  // gradient modes: (nx, D) of T, s * dS @ Y (+ negatives)
  double* d_scale;            // query-side modes: += sum dS * <x, y>
  const void* neg;            // kA2TQuery: hard negatives (nx, MN, D) or null
  const float* dh;            // kA2TQuery: their dS (nx, MN)
  int MN;
};

// kXRes: the CTA's X rows stay in smem for the whole kernel (all nch <= kMaxResChunks chunks,
// loaded once), so the pipeline streams Y only; otherwise X chunks are streamed with Y.
constexpr int kMaxResChunks = 8;  // D <= 512: 64 x 512 x 2 bytes of X
template <typename T>
int smem_bytes(bool x_resident, int nch) {
  return ((x_resident ? nch : 2) * kBM + 2 * kBN + kBM) * kLD * int(sizeof(T)) + 2 * kBN * 4 +
         2 * kBN * 8 + 2 * kBM * 8 + kWarps * 8;
}

}  // namespace af2::contrastive_tc
