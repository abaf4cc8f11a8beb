//! QEMU tests of the device programs: library OSes driving the machine's
//! devices (HPET, PCI configuration space, QEMU's `edu`, a virtio-blk
//! disk) through frame capabilities, and the exclusivity of device pages.
//! Every boot has these devices (see `qemu::boot`); the virtio-blk test
//! also relies on the host-side check of the disk image after QEMU exits.
use crate::build::ImageSpec;
use crate::test::{programs, qt, QemuTest};

/// What a run of all four device programs must print (BIOS or UEFI).
const ALL_FOUR: &[&str] = &[
    "hpet: ok",
    " 1234:11e8 class 00ff00 (other)",
    "lspci: ok",
    "edu: ok",
    "virtio-blk: ok",
    "[xtask] disk check: sector 2 holds the virtio-blk pattern",
    "success",
];

/// One test per device program, one for exclusive ownership, and one with
/// all four device programs competing for the same configuration pages.
pub fn tests() -> Vec<QemuTest> {
    vec![
        qt(
            "device-hpet",
            programs("hpet"),
            0,
            &[
                "hpet: claimed the HPET at phys 0xfed00000 (1 device page(s)), mapped uncached",
                "hpet: vendor 0x8086, 3 timers, counter period 10000000 fs (100 MHz)",
                ": advanced (",
                "hpet: claiming it twice refused: FrameInUse",
                "hpet: released, then claimed again at phys 0xfed00000",
                "hpet: released; device pages held: 0",
                "hpet: ok",
                "(hpet) exited with code 0",
                "success",
            ],
        ),
        qt(
            "device-lspci",
            programs("lspci"),
            0,
            &[
                "; MADT: local APIC at 0xfee00000, 1 IOAPIC(s) at 0xfec00000 (id 0, GSI 0)",
                "[exo] ACPI: MCFG: ECAM at 0xb0000000, segment 0, buses 0x00..=0xff",
                "[exo] ACPI: HPET at 0xfed00000",
                "[exo] ACPI: DMAR: host address width 39 bits, interrupt remapping supported, 1 remapping unit(s), 0 reserved region(s)",
                "[exo] ACPI: DMAR unit at 0xfed90000, segment 0; scope: IOAPIC 0 at ff:00.0, PCI endpoint at 00:00.0, ",
                "PCI endpoint at 00:03.0, PCI endpoint at 00:04.0, ",
                "[exo] IOMMU: unit at 0xfed90000: VT-d 1.0, 65536 domains, 39-bit I/O addresses, page tables of 3, 1 fault record(s), ",
                "); translation off",
                "[exo] IOMMU: unit at 0xfed90000: translation on, root table at 0x",
                ": every function it serves is blocked until its driver maps frames for it",
                "[exo] IOMMU: DMA is confined by VT-d: a PCI function reaches only the frames its driver maps for it (iomap), none before; interrupts are not remapped",
                "lspci: bus 0 configuration space at phys 0xb0000000 (ECAM from ACPI MCFG, buses 0..=255): 256 device capabilities",
                "lspci: 00:00.0 8086:29c0 class 060000 (host bridge)",
                " 1234:11e8 class 00ff00 (other)",
                " 1af4:1042 class 010000 (SCSI storage)",
                " size 1 MiB",
                "BAR4 mem64 ",
                " size 16 KiB prefetchable",
                "lspci: 00:1f.0 8086:2918 class 060100 (ISA bridge)",
                "released bus 0 (device capabilities held: 0)",
                "lspci: ok",
                "(lspci) exited with code 0",
                "success",
            ],
        ),
        // A hostile driver gives edu's configuration page back with bus
        // mastering on and still programs a DMA into RAM through the
        // register page it kept: VT-d blocks it (nobody claims the
        // function), the bytes stay, the kernel reports the fault record.
        qt(
            "device-edu-dma-blocked-unclaimed",
            ImageSpec {
                options: vec!["drivers=dma-stray".into()],
                ..programs("dma-stray")
            },
            0,
            &[
                "dma-stray: gave 00:03.0's configuration page back with bus mastering on; programming a DMA edu 0x40000 -> RAM ",
                "dma-stray: the device finished; all 4096 bytes are still 0xa5: the DMA was blocked",
                "[exo] IOMMU: blocked DMA write by 00:03.0 at 0x",
                " (0x2: context entry not present)",
                "dma-stray: ok",
                "(dma-stray) exited with code 0",
                "success",
            ],
        ),
        // A hostile driver aims edu's DMA at the kernel's memory, at a
        // frame another process holds (write and read) and at a frame it
        // freed a moment ago that the victim now holds: VT-d blocks every
        // transfer, the kernel reports each fault record, the victim's
        // bytes stay, the run succeeds.
        qt(
            "device-edu-dma-hostile",
            ImageSpec {
                options: vec!["drivers=dma-hostile".into()],
                ..programs("dma-victim,dma-hostile")
            },
            0,
            &[
                "dma-hostile: a DMA into its own mapped buffer (I/O address ",
                ") arrived: the device works",
                "[exo] IOMMU: blocked DMA write by 00:03.0 at ",
                "dma-hostile: DMA write of 4095 zero bytes into the kernel image at ",
                "dma-hostile: DMA write of 4095 zero bytes into the kernel's page-table root at ",
                "dma-victim: holds frame ",
                "dma-hostile: told by the kernel: our write at ",
                "dma-hostile: a DMA write into dma-victim's frame: blocked; dma-victim's bytes are unchanged",
                "dma-hostile: told by the kernel: our read at ",
                "[exo] IOMMU: blocked DMA read by 00:03.0 at ",
                "dma-hostile: DMA read of dma-victim's frame ",
                ": the device got none of its bytes",
                " (freed by the driver), every byte 0x5a",
                "dma-hostile: a DMA write into the frame it freed (now dma-victim's): blocked; dma-victim's bytes are unchanged",
                "dma-hostile: ok",
                "dma-victim: ok: 5 calls served; all 2 frames intact",
                "(dma-hostile) exited with code 0",
                "(dma-victim) exited with code 0",
                "success",
            ],
        ),
        // A driver starts a DMA and exits before it lands: its frames
        // leave the device's space (IOTLB flushed) before they are freed;
        // the victim takes the target frame and keeps its bytes.
        qt(
            "device-edu-dma-exit-mid-transfer",
            ImageSpec {
                options: vec!["drivers=dma-exit".into()],
                ..programs("dma-victim,dma-exit")
            },
            0,
            &[
                "dma-exit: started a DMA of 0xee bytes into its frame ",
                "; exiting now, holding everything",
                "(dma-exit) exited with code 0",
                "dma-victim: dma-exit ended; took its DMA target ",
                // Blocked by the cleared, flushed entry (the function is
                // still held: its space is not gone).
                "(0x5: not mapped for writing in its address space)",
                "[exo] IOMMU: 00:03.0 released: blocked from DMA, its address space freed",
                "dma-victim: ok: 1 calls served; all 1 frames intact",
                "success",
            ],
        ),
        // Every refusal of iomap/iounmap, exact errors.
        qt(
            "device-iomap-refusals",
            ImageSpec {
                options: vec!["drivers=test-iomap".into()],
                ..programs("test-iomap")
            },
            0,
            &[
                "test-iomap: iomap of a frame it holds: ok",
                "test-iomap: the same address again: refused: AlreadyMapped",
                "test-iomap: a handle it does not hold: refused: BadCapability",
                "test-iomap: a BAR page as the frames: refused: InvalidArgument",
                "test-iomap: WRITE through a read-only copy: refused: PermissionDenied",
                "test-iomap: the last page, two frames (past the top): refused: InvalidAddress",
                "test-iomap: its mapping went with the move: refused: NotMapped",
                "test-iomap: 256 mappings held at once before OutOfMemory (bound 256)",
                " checks passed, 0 failed",
                "test-iomap: ok",
                "success",
            ],
        ),
        qt(
            "device-edu-mmio-and-dma",
            programs("edu"),
            0,
            &[
                "[exo] IOMMU: 00:03.0: DMA address space made (domain 25): its DMA reaches only what its driver maps (iomap)",
                "edu: found 1234:11e8 at 00:",
                "(memory, bus master)",
                "edu: MSI on vector 0x40, delivered to our endpoint",
                "edu: identification 0x010000ed: version 1.0",
                "edu: liveness 0x12345678 -> 0xedcba987 (complement): alive",
                "edu: the device computed 12! = 479001600",
                "(below the 28-bit limit 0x10000000)",
                "edu: DMA 4095 bytes RAM ",
                "-> edu 0x40000 -> RAM ",
                ": every byte matches",
                "edu: released 1 interrupt vector",
                "[exo] IOMMU: 00:03.0 released: blocked from DMA, its address space freed",
                "edu: ok",
                "(edu) exited with code 0",
                "success",
            ],
        ),
        // Without `-device intel-iommu` the firmware has no DMAR: the
        // kernel says DMA is unconfined, and the devices work as before.
        QemuTest {
            iommu: false,
            also_must_not: vec!["[exo] ACPI: DMAR", "[exo] IOMMU: unit"],
            ..qt(
                "device-lspci-no-iommu",
                programs("lspci"),
                0,
                &[
                    "[exo] ACPI: MCFG: ECAM at 0xb0000000, segment 0, buses 0x00..=0xff",
                    "[exo] ACPI: no DMAR: the machine reports no IOMMU",
                    "[exo] IOMMU: none (no ACPI DMAR table): DMA is unconfined; only designated drivers may claim devices",
                    "lspci: bus 0 configuration space at phys 0xb0000000 (ECAM from ACPI MCFG, buses 0..=255)",
                    "lspci: ok",
                    "success",
                ],
            )
        },
        qt(
            "device-virtio-blk",
            programs("virtio-blk"),
            0,
            &[
                "virtio-blk: found 1af4:1042 at 00:",
                "[exo] IOMMU: 00:04.0: DMA address space made (domain 33): its DMA reaches only what its driver maps (iomap)",
                "device pages, mapped uncached",
                "virtio-blk: completions by MSI-X on vector 0x",
                "virtio-blk: 2048 sectors of 512 bytes (1024 KiB)",
                "virtio-blk: sector 1 holds the pattern the xtask wrote",
                "virtio-blk: wrote sector 2, flushed, read it back: same bytes",
                " completion interrupts, waited for in recv",
                "virtio-blk: device reset; DMA allocations left: 0",
                "virtio-blk: ok",
                "(virtio-blk) exited with code 0",
                "success",
                // Written by the xtask after QEMU, from the disk image.
                "[xtask] disk check: sector 2 holds the virtio-blk pattern",
            ],
        ),
        qt(
            "device-claim-exclusive",
            programs("test-device-claim"),
            0,
            &[
                "test-device-claim: frame_phys of the device capability = 0xfed00000 (asked for 0xfed00000)",
                "test-device-claim: device frames held by me: 0 -> 1;",
                "test-device-claim: HPET vendor 0x8086, 3 timers",
                "test-device-claim-peer: claim while test-device-claim holds it: refused: FrameInUse",
                "test-device-claim-peer: claim after test-device-claim freed it: ok (frame_phys 0xfed00000, device frames held: 1)",
                "test-device-claim-peer: claim after test-device-claim claimed it again: refused: FrameInUse",
                "test-device-claim-peer: claim after test-device-claim exited holding it: ok",
                "test-device-claim: ok",
                "test-device-claim-peer: ok",
                "success",
            ],
        ),
        qt(
            "devices-together",
            programs("hpet,lspci,edu,virtio-blk"),
            0,
            ALL_FOUR,
        ),
        // httpd serves the host through QEMU's user-mode network: the
        // host client (tools/xtask/src/net.rs) fetches / and /1mib, sends
        // hostile requests, then /quit; the kernel checks conservation.
        QemuTest {
            host_check: Some(crate::net::check_httpd),
            timeout: std::time::Duration::from_secs(120),
            ..qt(
                "net-httpd",
                programs("httpd"),
                0,
                &[
                    "httpd: found virtio-net 1af4:1041 at 00:",
                    "httpd: TSC runs at ",
                    "httpd: MAC 52:54:00:12:34:56, address 10.0.2.15/24, gateway 10.0.2.2",
                    "httpd: ping 10.0.2.2: ARP resolved, echo reply",
                    "httpd: NIC interrupts by MSI-X on vector 0x",
                    "httpd: listening on 10.0.2.15:80 with 16 sockets (blocking on the NIC's interrupt)",
                    "httpd: quit: ",
                    " NIC interrupts, ",
                    "httpd: NIC reset and released: DMA allocations left: 0;",
                    ", device frames: 0",
                    "httpd: ok",
                    "(httpd) exited with code 0",
                    "success",
                    "[xtask] host check: ok: httpd answered after ",
                    "/1mib (pattern ok, ",
                    "4 clients at once: /1mib twice each, byte for byte",
                    "9 malformed requests answered 400/431/501/505",
                    "1 MiB request line: ",
                    "24 idle connections: a new client served",
                    "3 clients gone mid-response; then /1mib again, byte for byte",
                    "/quit answered",
                ],
            )
        },
        // The same under UEFI (OVMF reports ECAM as reserved type 0 and
        // places BARs elsewhere, some above 4 GiB).
        qt(
            "devices-together-uefi",
            crate::build::ImageSpec {
                uefi: true,
                ..programs("hpet,lspci,edu,virtio-blk")
            },
            0,
            ALL_FOUR,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use crate::qemu::{
        check_disk, disk_pattern, Outcome, DISK_BYTES, DISK_WRITE_SECTOR, QEMU_FAILURE,
        QEMU_SUCCESS,
    };
    use std::time::Duration;

    fn disk(name: &str, good: bool) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("exo-device-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut bytes = vec![0u8; DISK_BYTES];
        let start = DISK_WRITE_SECTOR * 512;
        for i in 0..512 {
            bytes[start + i] = disk_pattern(DISK_WRITE_SECTOR, i);
        }
        if !good {
            bytes[start + 100] ^= 1;
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_disk_check_accepts_the_pattern_and_nothing_else() {
        assert_eq!(check_disk(&disk("good.img", true)), Ok(()));
        let why = check_disk(&disk("bad.img", false)).unwrap_err();
        assert!(why.contains("at byte 100"), "{why}");
        assert!(check_disk(std::path::Path::new("/nonexistent/disk.img")).is_err());
        let _ = std::fs::remove_dir_all(disk("good.img", true).parent().unwrap());
    }

    #[test]
    fn a_failed_disk_check_fails_a_successful_run() {
        let outcome = |disk_check| Outcome {
            status: Some(QEMU_SUCCESS),
            serial: String::new(),
            timed_out: false,
            elapsed: Duration::ZERO,
            disk_check,
            host_check: None,
        };
        assert_eq!(outcome(None).exit_code(), 0);
        assert_eq!(outcome(Some(Ok(()))).exit_code(), 0);
        assert_eq!(outcome(Some(Err("differs".into()))).exit_code(), 1);
    }

    #[test]
    fn a_failed_host_check_fails_a_successful_run() {
        let outcome = |status, host_check| Outcome {
            status: Some(status),
            serial: String::new(),
            timed_out: false,
            elapsed: Duration::ZERO,
            disk_check: None,
            host_check,
        };
        assert_eq!(
            outcome(QEMU_SUCCESS, Some(Ok("fine".into()))).exit_code(),
            0
        );
        assert_eq!(
            outcome(QEMU_SUCCESS, Some(Err("bad body".into()))).exit_code(),
            1
        );
        assert_eq!(
            outcome(QEMU_FAILURE, Some(Ok("fine".into()))).exit_code(),
            1
        );
    }
}
