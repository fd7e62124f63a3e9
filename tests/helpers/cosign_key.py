#!/usr/bin/env python3
"""cosign key files made and read without hermetic (or cosign): the format that cosign's
`generate-key-pair` writes, implemented from its definition with `cryptography` + PyNaCl.

  cosign_key.py gen PREFIX      writes PREFIX.key / PREFIX.pub (password: $COSIGN_PASSWORD)
  cosign_key.py pub KEYFILE     decrypts KEYFILE and prints its public key (PEM)
"""
import base64, hashlib, json, os, sys

import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"


def kdf(password, salt, params):
    return hashlib.scrypt(password, salt=salt, n=params["N"], r=params["r"], p=params["p"],
                          dklen=32, maxmem=256 * 1024 * 1024)


def pem(label, data):
    b = base64.b64encode(data).decode()
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def gen(prefix):
    password = os.environ.get("COSIGN_PASSWORD", "").encode()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = nacl.utils.random(32)
    nonce = nacl.utils.random(24)
    params = {"N": 32768, "r": 8, "p": 1}
    box = nacl.secret.SecretBox(kdf(password, salt, params))
    ct = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": params, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ct).decode(),
    }
    with open(prefix + ".key", "w") as f:
        f.write(pem(LABEL, json.dumps(doc).encode()))
    with open(prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def pub(path):
    text = open(path).read()
    assert f"-----BEGIN {LABEL}-----" in text, "not a cosign private key"
    body = "".join(l for l in text.splitlines() if not l.startswith("-----"))
    doc = json.loads(base64.b64decode(body))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}, doc["kdf"]["params"]
    password = os.environ.get("COSIGN_PASSWORD", "").encode()
    key = kdf(password, base64.b64decode(doc["kdf"]["salt"]), doc["kdf"]["params"])
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                             base64.b64decode(doc["cipher"]["nonce"]))
    private = serialization.load_der_private_key(der, password=None)
    sys.stdout.write(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())


if __name__ == "__main__":
    {"gen": gen, "pub": pub}[sys.argv[1]](sys.argv[2])
