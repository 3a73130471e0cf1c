// The MPI transport: one rank per process (launched with mpirun), possibly on several
// machines. Compiled where CMake or node-gyp finds MPI (SIGLIP_WITH_MPI).
#pragma once
#include <chrono>
#include <memory>

#include "../transport.h"

namespace siglip::ring {

// Initialises MPI on first use (MPI_THREAD_SERIALIZED: calls may come from any one thread
// at a time; every call is also serialised by the transport). Call from the thread that
// will later call finalizeMpi(). `timeout` bounds every wait.
std::unique_ptr<Transport> createMpiTransport(std::chrono::milliseconds timeout);

// MPI_Finalize, if this library initialised MPI and it is not finalised yet.
void finalizeMpi();

// True when this process was started by an MPI launcher (environment), without initialising.
bool launchedByMpi();

}  // namespace siglip::ring
