#include "audit/signing_key.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "audit/audit_record.h"

namespace redline::audit {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

struct MdContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using MdContext = std::unique_ptr<EVP_MD_CTX, MdContextFree>;

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

void set(std::string* error, std::string message) {
  if (error) *error = std::move(message);
}

bool is_ed25519(EVP_PKEY* key) { return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

std::string private_key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// Writes all of `text` to a file created with mode 0600; fails when the file exists.
bool write_new_private_file(const std::string& path, const std::string& text, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    set(error, "cannot create " + path + ": " + std::strerror(errno));
    return false;
  }
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      set(error, "cannot write " + path + ": " + std::strerror(errno));
      ::close(fd);
      ::unlink(path.c_str());
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) {
    set(error, "cannot sync " + path + ": " + std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

std::string checkpoint_message(std::int64_t seq, std::string_view hash_hex) {
  std::string message = "redline-audit-checkpoint-v1\n";
  message += std::to_string(seq);
  message += '\n';
  message += hash_hex;
  return message;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool base64_decode(std::string_view text, std::string* bytes) {
  if (text.size() % 4 != 0) return false;
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts padding as zero bytes.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  *bytes = std::move(out);
  return true;
}

EvpKey load_signing_key(const std::string& path, std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    set(error, "cannot read the audit signing key " + path + ": " + std::strerror(errno));
    return nullptr;
  }
  std::stringstream text;
  text << file.rdbuf();
  const std::string pem = text.str();
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    set(error, "cannot parse the audit signing key " + path + ": " + openssl_error());
    return nullptr;
  }
  if (!is_ed25519(key.get())) {
    set(error, "the audit signing key " + path + " is not an Ed25519 key");
    return nullptr;
  }
  return key;
}

EvpKey load_or_create_signing_key(const std::string& path, std::string* error) {
  if (::access(path.c_str(), F_OK) == 0) return load_signing_key(path, error);
  EvpKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) {
    set(error, "cannot create an Ed25519 key: " + openssl_error());
    return nullptr;
  }
  // Written to a private temporary and linked into place: link() fails when another process
  // created the key first, and then its key (complete, since it was synced before the link)
  // is the one to use.
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  ::unlink(temporary.c_str());
  if (!write_new_private_file(temporary, private_key_pem(key.get()), error)) return nullptr;
  const int linked = ::link(temporary.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(temporary.c_str());
  if (linked != 0 && link_errno != EEXIST) {
    set(error, "cannot create the audit signing key " + path + ": " + std::strerror(link_errno));
    return nullptr;
  }
  if (linked != 0) return load_signing_key(path, error);
  return key;
}

EvpKey public_key_from_pem(std::string_view pem, std::string* error) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpKey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    set(error, "cannot parse the public key: " + openssl_error());
    return nullptr;
  }
  if (!is_ed25519(key.get())) {
    set(error, "the public key is not an Ed25519 key");
    return nullptr;
  }
  return key;
}

std::string public_key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(bio.get(), key)) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string key_id_of(EVP_PKEY* key) {
  unsigned char raw[32];
  std::size_t size = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key, raw, &size) != 1) return {};
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(raw), size)).substr(0, 16);
}

std::string sign(EVP_PKEY* private_key, std::string_view message) {
  MdContext context(EVP_MD_CTX_new());
  if (EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, private_key) != 1) return {};
  unsigned char signature[64];
  std::size_t size = sizeof signature;
  if (EVP_DigestSign(context.get(), signature, &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return {};
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(signature), size));
}

bool verify_signature(EVP_PKEY* public_key, std::string_view message,
                      std::string_view signature_base64) {
  std::string signature;
  if (!base64_decode(signature_base64, &signature) || signature.size() != 64) return false;
  MdContext context(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, public_key) != 1) {
    return false;
  }
  return EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace redline::audit
