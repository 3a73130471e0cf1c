// Where NVIDIA's run-time libraries (cuBLAS, NCCL) that the package loads with dlopen are
// commonly found besides the dynamic loader's own search: pip wheels (PyTorch's dependencies
// ship them as site-packages/nvidia/<name>/lib). Shared by the cuBLAS loader and the NCCL
// library (through dynamic_library.h), so both look in the same places, in the same order.
// Platform code: no siglip header.
#pragma once
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace siglip::platform {

inline bool isDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The existing folders site-packages/nvidia/*/lib of the Python environments in reach: the
// active virtual or conda environment, each PATH entry's parent (a venv's bin/ on PATH, as on
// machines whose python3 is a venv nobody activated), ~/.local, then the system prefixes.
inline std::vector<std::string> pythonWheelLibraryDirs() {
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* p = std::getenv(var); p && *p) prefixes.push_back(p);
  if (const char* path = std::getenv("PATH")) {
    std::string entries(path);
    for (size_t start = 0; start <= entries.size();) {
      const size_t end = std::min(entries.find(':', start), entries.size());
      const std::string dir = entries.substr(start, end - start);
      if (dir.size() > 4 && dir.compare(dir.size() - 4, 4, "/bin") == 0) prefixes.push_back(dir.substr(0, dir.size() - 4));
      start = end + 1;
    }
  }
  if (const char* home = std::getenv("HOME")) prefixes.push_back(std::string(home) + "/.local");
  for (const char* p : {"/usr/local", "/usr", "/opt/conda"}) prefixes.push_back(p);

  std::vector<std::string> dirs;
  for (const std::string& prefix : prefixes) {
    for (const char* packages : {"site-packages", "dist-packages"}) {
      const std::string pattern = prefix + "/lib/python3*/" + packages + "/nvidia/*/lib";
      glob_t found{};
      if (glob(pattern.c_str(), 0, nullptr, &found) == 0)
        for (size_t k = 0; k < found.gl_pathc; ++k)
          if (std::find(dirs.begin(), dirs.end(), found.gl_pathv[k]) == dirs.end() && isDirectory(found.gl_pathv[k]))
            dirs.push_back(found.gl_pathv[k]);
      globfree(&found);
    }
  }
  return dirs;
}

}  // namespace siglip::platform
