// Opening a shared library at run time (dlopen) and resolving a table of its functions: the
// one mechanism behind the cuBLAS loader (cuda/cublas_loader.cu) and the NCCL library of the
// ring (ring/nccl/nccl_library.h). Each caller keeps its own search order (its environment
// variable, the loader's own search by soname, the usual folders, the Python wheels of
// library_search.h) as a list of candidates, and its own messages; this file tries the
// candidates in order, keeps the first that opens and has every required function, reports
// which file that is, and says for every other candidate why it was passed over.
//
// Platform code, below every other layer: no siglip header, no siglip type. Header only, so
// that any layer's library can use it without a build change.
#pragma once
#include <dirent.h>
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <string>
#include <vector>

#include "library_search.h"

namespace siglip::platform {

// The files in `dir` whose names start with `prefix`, shortest first: libcublas.so.12 before
// libcublas.so.12.8.4.1 (the same library; the shorter name is the one the soname uses).
inline std::vector<std::string> filesStartingWith(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return names;
}

// One function of the table: its name, the caller's function pointer that receives it, and
// whether the library is of no use without it. Made by requiredSymbol / optionalSymbol.
struct Symbol {
  const char* name;
  void* slot;                                // the address of the caller's function pointer
  void (*store)(void* slot, void* address);  // writes `address`, as that pointer's type, there
  bool required;
};

template <typename Fn>
Symbol requiredSymbol(const char* name, Fn*& slot) {
  return {name, &slot, [](void* s, void* address) { *static_cast<Fn**>(s) = reinterpret_cast<Fn*>(address); }, true};
}
template <typename Fn>
Symbol optionalSymbol(const char* name, Fn*& slot) {
  Symbol symbol = requiredSymbol(name, slot);
  symbol.required = false;
  return symbol;
}

// One file to try: a path, or a bare soname ("libnccl.so.2") for the dynamic loader's own
// search (LD_LIBRARY_PATH, the ldconfig cache). `dependencies`: files of a library it needs,
// tried first with RTLD_GLOBAL, the first that opens kept (cuBLAS's libcublasLt from the
// same folder, so that it resolves where that folder is not on the loader's path).
struct Candidate {
  std::string file;
  std::vector<std::string> dependencies;
};

// A candidate passed over, and why: dlopen refused it (`dlerror`, whose text names the file),
// or it opened but lacks required functions (`missing`, in the table's order).
struct Refusal {
  std::string file;   // the candidate as given
  std::string path;   // the file the loader opened, when it opened one
  std::string dlerror;
  std::vector<std::string> missing;
};

// What openFirst found. The library stays loaded for the life of the process (nothing here
// closes a library whose functions were handed out).
struct OpenedLibrary {
  void* handle = nullptr;         // null when no candidate would do
  std::string path;               // the file loaded (a soname: the file the loader found for it)
  std::string dependency;         // the dependency opened before it, or ""
  std::vector<Refusal> refusals;  // every candidate passed over, in order
  explicit operator bool() const { return handle != nullptr; }
};

// What to do with a candidate that opens but lacks required functions: try the next one, or
// stop there (the first library the search finds is the one to use or to complain about).
enum class WhenIncomplete { TryNext, Stop };

// The file behind a handle, as the loader names it: the path given, or for a soname the file
// its search found; `fallback` when the loader does not say.
inline std::string loadedFile(void* handle, const std::string& fallback) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && *map->l_name) return map->l_name;
  return fallback;
}

// Resolves `symbols` in `handle` into the caller's pointers (null where absent); returns the
// names of the required ones it lacks.
inline std::vector<std::string> resolveSymbols(void* handle, const std::vector<Symbol>& symbols) {
  std::vector<std::string> missing;
  for (const Symbol& s : symbols) {
    void* address = dlsym(handle, s.name);
    s.store(s.slot, address);
    if (!address && s.required) missing.push_back(s.name);
  }
  return missing;
}

// Tries `candidates` in order (dlopen RTLD_NOW | RTLD_LOCAL) and resolves `symbols` in each
// that opens. Never throws. On success the caller's pointers hold the library's functions; on
// failure they are all null and `refusals` says why for each candidate.
inline OpenedLibrary openFirst(const std::vector<Candidate>& candidates, const std::vector<Symbol>& symbols,
                               WhenIncomplete whenIncomplete) {
  OpenedLibrary result;
  for (const Candidate& candidate : candidates) {
    std::string dependency;
    for (const std::string& file : candidate.dependencies) {
      if (dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
        dependency = file;
        break;
      }
    }
    dlerror();  // clear any earlier message
    void* handle = dlopen(candidate.file.c_str(), RTLD_NOW | RTLD_LOCAL);
    Refusal refusal{candidate.file, "", "", {}};
    if (!handle) {
      const char* why = dlerror();
      refusal.dlerror = why ? why : candidate.file + ": not found";
      result.refusals.push_back(std::move(refusal));
      continue;
    }
    refusal.path = loadedFile(handle, candidate.file);
    refusal.missing = resolveSymbols(handle, symbols);
    if (refusal.missing.empty()) {
      result.handle = handle;
      result.path = refusal.path;
      result.dependency = dependency;
      return result;
    }
    for (const Symbol& s : symbols) s.store(s.slot, nullptr);  // nothing of a closed library
    dlclose(handle);
    result.refusals.push_back(std::move(refusal));
    if (whenIncomplete == WhenIncomplete::Stop) break;
  }
  return result;
}

// `names` for a message: `before` the first, `between` the others ("a, b" or " a b").
inline std::string joined(const std::vector<std::string>& names, const std::string& before,
                          const std::string& between) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) text += (i == 0 ? before : between) + names[i];
  return text;
}

}  // namespace siglip::platform
