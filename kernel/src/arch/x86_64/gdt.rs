//! The GDT (kernel and user segments in the order `sysret` needs) and the
//! TSS: `rsp0` is the one kernel stack every trap from ring 3 lands on, IST 1
//! a separate stack for double faults, IST 2 one for NMIs, IST 3 one for
//! machine checks (both can arrive while rsp still holds the user's stack
//! pointer: in the `syscall` entry and exit paths).
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot (0-based in the TSS) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot of the NMI stack.
pub const NMI_IST: u16 = 1;
/// IST slot of the machine-check stack.
pub const MCE_IST: u16 = 2;

const KERNEL_STACK_SIZE: usize = 64 * 1024;
const FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(align(16))]
struct Stack<const N: usize>([u8; N]);

static mut KERNEL_STACK: Stack<KERNEL_STACK_SIZE> = Stack([0; KERNEL_STACK_SIZE]);
static mut FAULT_STACK: Stack<FAULT_STACK_SIZE> = Stack([0; FAULT_STACK_SIZE]);
static mut NMI_STACK: Stack<FAULT_STACK_SIZE> = Stack([0; FAULT_STACK_SIZE]);
static mut MCE_STACK: Stack<FAULT_STACK_SIZE> = Stack([0; FAULT_STACK_SIZE]);

/// The selectors the rest of the kernel needs.
pub struct Selectors {
    /// Ring-0 code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data/stack.
    pub kernel_data: SegmentSelector,
    /// Ring-3 data/stack (RPL 3).
    pub user_data: SegmentSelector,
    /// Ring-3 code (RPL 3).
    pub user_code: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors, SegmentSelector)> = Once::new();

/// Top of the kernel stack that traps and syscalls from user space use.
pub fn kernel_stack_top() -> u64 {
    let base = VirtAddr::from_ptr(&raw const KERNEL_STACK);
    (base + KERNEL_STACK_SIZE as u64).as_u64()
}

/// Builds and loads the GDT and TSS. Once: a second `ltr` would find the
/// TSS busy and raise #GP.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.privilege_stack_table[0] = VirtAddr::new(kernel_stack_top());
        let fault = VirtAddr::from_ptr(&raw const FAULT_STACK);
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = fault + FAULT_STACK_SIZE as u64;
        let nmi = VirtAddr::from_ptr(&raw const NMI_STACK);
        tss.interrupt_stack_table[NMI_IST as usize] = nmi + FAULT_STACK_SIZE as u64;
        let mce = VirtAddr::from_ptr(&raw const MCE_STACK);
        tss.interrupt_stack_table[MCE_IST as usize] = mce + FAULT_STACK_SIZE as u64;
        tss
    });
    let (gdt, sel, tss_sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        // Order fixed by STAR: kernel code, kernel data, then user data, user code.
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        let sel = Selectors {
            kernel_code,
            kernel_data,
            user_data,
            user_code,
        };
        (gdt, sel, tss_sel)
    });
    gdt.load();
    // SAFETY: the selectors name descriptors of the GDT just loaded, which
    // lives in a static for ever.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(*tss_sel);
    }
}

/// The selectors (after [`init`]).
pub fn selectors() -> &'static Selectors {
    &GDT.get().expect("gdt::init not called").1
}

/// A process's data segment selectors, DS, ES, FS and GS: a program may
/// load any selector that names the user data segment or the null
/// descriptor (with any RPL), which is 12 bits it could otherwise pass to
/// the next process. The kernel never changes these registers itself (64-bit
/// code ignores DS and ES, and it uses no FS or GS), so while it runs they
/// hold the interrupted program's values; the scheduler saves them when a
/// process stops running and loads the next one's ([`crate::sched`]). The
/// bases stay 0: loading a selector takes the base of a GDT descriptor (0
/// for every one here), and FSGSBASE is off (`wrfsbase` is #UD).
///
/// A value is either [`UserSegments::NULL`] or what [`UserSegments::read`]
/// found in the registers: nothing else can be built, so [`load`](Self::load)
/// never meets a selector that would fault.
///
/// `repr(transparent)`: DS, ES, FS, GS as four `u16`s in that order, which
/// the IPC stub (syscall.rs) stores with `mov m16, sreg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct UserSegments([u16; 4]);

impl UserSegments {
    /// All four null: what a new process starts with.
    pub const NULL: UserSegments = UserSegments([0; 4]);

    /// The registers' current values.
    pub fn read() -> Self {
        UserSegments([
            DS::get_reg().0,
            ES::get_reg().0,
            FS::get_reg().0,
            GS::get_reg().0,
        ])
    }

    /// The four selectors as one word (DS in the low 16 bits, then ES, FS
    /// and GS), as the IPC stub reads them from where it stored them: for
    /// comparing only (no selector is ever built from bits).
    pub fn bits(self) -> u64 {
        let [ds, es, fs, gs] = self.0.map(u64::from);
        ds | es << 16 | fs << 32 | gs << 48
    }

    /// Loads the four registers.
    pub fn load(self) {
        let [ds, es, fs, gs] = self.0.map(SegmentSelector);
        // SAFETY: each value is null or was read from these registers (the
        // type has no other constructor) and names a descriptor of the GDT,
        // which never changes after `init`: the null descriptor, or the
        // user data segment, whose DPL 3 passes the ring-0 check (DPL >=
        // max(CPL, RPL)). Loading a data selector changes no memory.
        unsafe {
            DS::set_reg(ds);
            ES::set_reg(es);
            FS::set_reg(fs);
            GS::set_reg(gs);
        }
    }
}
