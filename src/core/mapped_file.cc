#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace lserve {
namespace {

Status ErrnoStatus(const std::string& what, const std::string& path) {
  const int e = errno;
  std::string msg = what + " '" + path + "': " + std::strerror(e);
  if (e == ENOENT) return NotFound(msg);
  return IoError(msg);
}

// Closes a descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Opens `path` read-only and checks that it is a regular file.
Result<int> OpenRegularFile(const std::string& path, struct stat* st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path);
  if (::fstat(fd, st) != 0) {
    Status s = ErrnoStatus("cannot stat", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st->st_mode)) {
    ::close(fd);
    return InvalidArgument("'" + path + "' is not a regular file");
  }
  return fd;
}

}  // namespace

MappedFile::~MappedFile() {
  if (data_ != nullptr && size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr && size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

Result<MappedFile> MappedFile::Open(const std::string& path) {
  struct stat st {};
  LSERVE_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, &st));
  FdCloser closer{fd};
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ == 0) return f;
  void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    f.size_ = 0;
    return ErrnoStatus("cannot map", path);
  }
  f.data_ = static_cast<const uint8_t*>(p);
  return f;
}

Result<std::string> ReadTextFile(const std::string& path, size_t max_bytes) {
  struct stat st {};
  LSERVE_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, &st));
  FdCloser closer{fd};
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return InvalidArgument("'" + path + "' is too large (" + std::to_string(st.st_size) +
                           " bytes, limit " + std::to_string(max_bytes) + ")");
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read", path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace lserve
