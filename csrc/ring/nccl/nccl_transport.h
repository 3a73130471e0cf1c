// The NCCL transport: ranks on GPUs (one GPU per rank), in one process (one endpoint per
// device, each driven by its own thread) or in several (one rank per process, the unique id
// shared by the caller, e.g. through the TypeScript API). Compiled with the CUDA backend
// only (siglip_ring_nccl). Plain C++: no CUDA or NCCL headers needed by includers.
//
// libnccl.so.2 is loaded at run time (dlopen), so neither the build nor CPU-only use needs
// NCCL: SIGLIP_NCCL_LIBRARY (a file, or a folder holding libnccl.so.2) names it, else
// "libnccl.so.2" through the loader's search path, then a few usual locations, then the pip
// wheels of the Python environments in reach (platform/library_search.h: Python's
// nvidia-nccl-cu12/13 wheels ship it as site-packages/nvidia/nccl/lib/libnccl.so.2).
// nccl_library.h declares and loads it (through platform/dynamic_library.h).
//
// Buffers given to send / receive are device memory on the endpoint's GPU
// (as CudaBlockBackend allocates them); allGather takes host memory, as in every transport.
// NCCL has no message envelope, so a receive's size cannot be checked against the send's:
// both sides must agree (the ring's do: they come from the all-gathered shard sizes).
// How sends and receives become NCCL groups, and why that cannot deadlock: nccl_transport.cpp.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../transport.h"

namespace siglip::ring {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

// Loads NCCL once. False (never throws) when it cannot be loaded or is older than 2.7 (no
// send/receive); `reason` then says why, naming every place tried.
bool ncclAvailable(std::string* reason = nullptr);
// The loaded library: its file and version ("2.21.5"). Throw when NCCL is not available.
std::string ncclLibraryPath();
std::string ncclVersionString();

// A new NCCL unique id (ncclGetUniqueId) as 128 bytes, for rank 0 to share with the others.
std::vector<uint8_t> ncclUniqueIdBytes();

// One rank of a multi-process group: `size` ranks, this one `rank`, on CUDA device `device`,
// all given the same `uniqueId` (128 bytes). Blocks until every rank has joined
// (ncclCommInitRank has no timeout): never call it on the JavaScript thread (use a worker,
// as the addon's Promise API does). `timeout` bounds every later wait.
std::unique_ptr<Transport> createNcclTransport(int rank, int size, const std::vector<uint8_t>& uniqueId, int device,
                                               std::chrono::milliseconds timeout);

// One process, one rank per listed device (rank r on devices[r]; ncclCommInitAll). Each
// endpoint must then be driven by its own thread. An abort on one endpoint makes the others'
// waits fail at once (they share a flag), not only at their timeout.
std::vector<std::unique_ptr<Transport>> createNcclGroupAllDevices(const std::vector<int>& devices,
                                                                  std::chrono::milliseconds timeout);

}  // namespace siglip::ring
