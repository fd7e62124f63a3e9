#!/usr/bin/env python3
"""Checks a hermetic output directory with the field's own libraries, no hermetic code:

  validate.py cyclonedx FILE            cyclonedx-python-lib JsonStrictValidator, schema 1.6
  validate.py dsse BUNDLE... --key PUB  securesystemslib Envelope.verify on each DSSE envelope

Prints one line per file; exits non-zero on the first failure.
"""
import base64, hashlib, json, sys


def cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(path).read())
    if errors:
        sys.exit(f"{path}: CycloneDX 1.6 validation failed: {errors!r}")
    print(f"{path}: valid CycloneDX 1.6")


def dsse(args):
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
    key_path = args[args.index("--key") + 1]
    bundles = [a for a in args if a not in ("--key", key_path)]
    pem = open(key_path, "rb").read()
    public = serialization.load_pem_public_key(pem)
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    hint = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    key = SSlibKey.from_crypto(public, keyid=hint, scheme="ecdsa-sha2-nistp256")
    for b in bundles:
        bundle = json.load(open(b))
        assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json", b
        assert bundle["verificationMaterial"]["publicKey"]["hint"] == hint, b
        env = Envelope.from_dict(bundle["dsseEnvelope"])
        verified = env.verify([key], 1)
        assert hint in verified, b
        statement = json.loads(env.payload)
        assert statement["_type"] == "https://in-toto.io/Statement/v1", b
        print(f"{b}: DSSE envelope verified ({statement['predicateType']})")


if __name__ == "__main__":
    if sys.argv[1] == "cyclonedx":
        cyclonedx(sys.argv[2])
    elif sys.argv[1] == "dsse":
        dsse(sys.argv[2:])
    else:
        sys.exit(__doc__)
