using System.Collections.Concurrent;
using System.Numerics;
using System.Text;
using GpuActivations.Device;

namespace GpuActivations.OpenCL;

/// <summary>
/// An OpenCL device with a context and an in-order command queue, running the kernels of <c>Kernels/Device</c>.
/// It either owns the context and queue (<see cref="Create"/>) or borrows an engine's (<see cref="Wrap"/>: nothing is
/// retained or released). Programs are compiled once per (kernel family, activation) and cached; kernel launches
/// (set-argument + enqueue, which a cl_kernel does not make thread-safe) are serialised by a lock.
/// </summary>
internal sealed unsafe class OpenCLDevice : IDeviceKernels, IDisposable
{
    readonly OpenCLNative _api;
    readonly OpenCLContextHandle _context;
    readonly OpenCLQueueHandle _queue;
    readonly object _launchLock = new();
    readonly ConcurrentDictionary<ProgramKey, Lazy<CompiledProgram>> _programs = new();
    readonly int _groupSize;
    readonly long _maxGroups;
    OpenCLBuffer? _scratch;
    bool _disposed;

    OpenCLDevice(OpenCLDeviceInfo info, OpenCLContextHandle context, OpenCLQueueHandle queue, bool owns)
    {
        OwnsContext = owns;
        _api = info.Api;
        Info = info;
        _context = context;
        _queue = queue;
        _groupSize = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(info.MaxWorkGroupSize, 1, 256) + 1) / 2;
        _maxGroups = Math.Max(1, info.ComputeUnits) * (info.IsCpu ? 16L : 32L);
        FlatLaunches = info.IsCpu;
        CpuShapedKernels = info.IsCpu;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Discovery and creation

    /// <summary>
    /// Every OpenCL device of every platform, or none and a human reason. Never throws: a missing library, no
    /// platform and no device are all answers.
    /// </summary>
    public static OpenCLDiscovery Enumerate() => Enumerate(OpenCLNative.Shared, OpenCLNative.SharedFailure);

    /// <summary>Discovery through a given binding (<paramref name="api"/> null: absent for <paramref name="loadFailure"/>).</summary>
    internal static OpenCLDiscovery Enumerate(OpenCLNative? api, string? loadFailure)
    {
        if (api is null) return new([], loadFailure ?? "OpenCL library not loaded");
        try
        {
            uint platformCount = 0;
            int status = api.clGetPlatformIDs(0, null, &platformCount);
            if (status == -1001) return new([], "no platform (CL_PLATFORM_NOT_FOUND_KHR -1001)");
            if (status != 0) return new([], $"clGetPlatformIDs failed: {OpenCLNative.ErrorName(status)} ({status})");
            if (platformCount == 0) return new([], "no platform");

            nint[] platforms = new nint[platformCount];
            fixed (nint* p = platforms) OpenCLNative.Check(api.clGetPlatformIDs(platformCount, p, null));

            var devices = new List<OpenCLDeviceInfo>();
            var problems = new List<string>();
            foreach (nint platform in platforms)
            {
                uint deviceCount = 0;
                status = api.clGetDeviceIDs(platform, OpenCLNative.CL_DEVICE_TYPE_ALL, 0, null, &deviceCount);
                if (status == -1 || (status == 0 && deviceCount == 0)) // CL_DEVICE_NOT_FOUND
                {
                    string name = TryPlatformName(api, platform);
                    if (name.Contains("Portable Computing Language", StringComparison.Ordinal))
                        problems.Add($"{name} has no device; PoCL hides its devices when its kernel cache (POCL_CACHE_DIR, else ~/.cache/pocl) is not writable");
                    continue;
                }
                if (status != 0) { problems.Add($"clGetDeviceIDs failed: {OpenCLNative.ErrorName(status)} ({status})"); continue; }
                nint[] ids = new nint[deviceCount];
                fixed (nint* p = ids) OpenCLNative.Check(api.clGetDeviceIDs(platform, OpenCLNative.CL_DEVICE_TYPE_ALL, deviceCount, p, null));
                foreach (nint id in ids)
                {
                    try { devices.Add(OpenCLDeviceInfo.Query(api, id)); }
                    catch (OpenCLException e) { problems.Add(e.Message); }
                }
            }
            return devices.Count > 0
                ? new(devices, null)
                : new([], problems.Count == 0 ? "no devices" : "no devices (" + string.Join("; ", problems) + ")");
        }
        catch (Exception e) when (e is OpenCLException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return new([], e.Message);
        }
    }

    static string TryPlatformName(OpenCLNative api, nint platform)
    {
        try { return api.PlatformString(platform, OpenCLNative.CL_PLATFORM_NAME); }
        catch (OpenCLException) { return "platform"; }
    }

    /// <summary>
    /// The first GPU found, else the first device of any kind.
    /// </summary>
    /// <exception cref="InvalidOperationException">No OpenCL device; the message is the discovery reason.</exception>
    public static OpenCLDevice CreateDefault()
    {
        OpenCLDiscovery found = Enumerate();
        if (!found.IsAvailable) throw new InvalidOperationException("No OpenCL device: " + found.Reason);
        OpenCLDeviceInfo pick = found.Devices.FirstOrDefault(d => !d.IsCpu) ?? found.Devices[0];
        return Create(pick);
    }

    /// <summary>Creates a context and an in-order queue of its own on <paramref name="device"/>.</summary>
    public static OpenCLDevice Create(OpenCLDeviceInfo device)
    {
        OpenCLNative api = device.Api;
        nint id = device.Device;
        int status;
        nint context = OpenCLNative.Checked(api.clCreateContext(null, 1, &id, 0, null, &status), status);
        var contextHandle = new OpenCLContextHandle(api, context, ownsHandle: true);
        try
        {
            nint queue = OpenCLNative.Checked(api.clCreateCommandQueue(context, id, 0, &status), status);
            return new OpenCLDevice(device, contextHandle, new OpenCLQueueHandle(api, queue, ownsHandle: true), owns: true);
        }
        catch
        {
            contextHandle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs on an engine's existing context and in-order queue without taking ownership: nothing is retained, and
    /// <see cref="Dispose"/> releases only what this object created (programs, kernels, scratch), never the context
    /// or queue. The caller keeps both alive for this object's lifetime.
    /// </summary>
    /// <exception cref="ArgumentException">The queue is not of the context, or executes out of order.</exception>
    public static OpenCLDevice Wrap(nint context, nint queue)
    {
        OpenCLNative api = OpenCLNative.Shared ?? throw new InvalidOperationException("No OpenCL: " + OpenCLNative.SharedFailure);
        nint queueContext, device;
        ulong properties;
        OpenCLNative.Check(api.clGetCommandQueueInfo(queue, OpenCLNative.CL_QUEUE_CONTEXT, (nuint)sizeof(nint), &queueContext, null));
        OpenCLNative.Check(api.clGetCommandQueueInfo(queue, OpenCLNative.CL_QUEUE_DEVICE, (nuint)sizeof(nint), &device, null));
        OpenCLNative.Check(api.clGetCommandQueueInfo(queue, OpenCLNative.CL_QUEUE_PROPERTIES, sizeof(ulong), &properties, null));
        if (queueContext != context) throw new ArgumentException("The command queue does not belong to the context.", nameof(queue));
        if ((properties & OpenCLNative.CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0)
            throw new ArgumentException("The command queue executes out of order; the kernels need an in-order queue.", nameof(queue));
        return new OpenCLDevice(OpenCLDeviceInfo.Query(api, device),
            new OpenCLContextHandle(api, context, ownsHandle: false),
            new OpenCLQueueHandle(api, queue, ownsHandle: false), owns: false);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Properties

    /// <summary>The device.</summary>
    public OpenCLDeviceInfo Info { get; }

    /// <summary>The cl_context.</summary>
    public nint Context => _context.Value;

    /// <summary>The cl_command_queue (in order).</summary>
    public nint Queue => _queue.Value;

    /// <summary>Whether this object created (and will release) the context and queue; false for <see cref="Wrap"/>.</summary>
    public bool OwnsContext { get; }

    /// <summary>
    /// Whether elementwise, PReLU and GLU launches cover all elements with one work-item each (flat kernels, no loop)
    /// instead of a capped grid with grid-stride loops. On by default for CPU devices, where PoCL vectorises across
    /// work-items only in loop-free bodies; tests switch it to run both forms.
    /// </summary>
    internal bool FlatLaunches { get; set; }

    /// <summary>Whether programs are compiled with GA_CPU_DEVICE (on by default for CPU devices; part of the program
    /// cache key, so tests and benchmarks can compare both).</summary>
    internal bool CpuShapedKernels { get; set; }

    /// <summary>The work-group size kernels launch with (a power of two, at most 256 and the device's maximum).</summary>
    public int GroupSize => _groupSize;

    // ---------------------------------------------------------------------------------------------------------------
    // Memory

    /// <summary>Allocates <paramref name="bytes"/> of device memory (read-write).</summary>
    public OpenCLBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ThrowIfDisposed();
        int status;
        nint mem = OpenCLNative.Checked(
            _api.clCreateBuffer(Context, OpenCLNative.CL_MEM_READ_WRITE, (nuint)Math.Max(bytes, 16), null, &status), status);
        return new OpenCLBuffer(new OpenCLMemHandle(_api, mem), bytes);
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="mem"/> at <paramref name="byteOffset"/>; returns when done (blocking).</summary>
    public void Write(nint mem, long byteOffset, ReadOnlySpan<byte> source)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        if (source.IsEmpty) return;
        fixed (byte* p = source)
            OpenCLNative.Check(_api.clEnqueueWriteBuffer(Queue, mem, OpenCLNative.CL_TRUE, (nuint)byteOffset, (nuint)source.Length, p, 0, null, null));
    }

    /// <summary>Copies from <paramref name="mem"/> at <paramref name="byteOffset"/> into <paramref name="destination"/>, after everything queued before (blocking).</summary>
    public void Read(nint mem, long byteOffset, Span<byte> destination)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        if (destination.IsEmpty) return;
        fixed (byte* p = destination)
            OpenCLNative.Check(_api.clEnqueueReadBuffer(Queue, mem, OpenCLNative.CL_TRUE, (nuint)byteOffset, (nuint)destination.Length, p, 0, null, null));
    }

    /// <summary>Queues a device-to-device copy (regions must not overlap within one buffer).</summary>
    public void Copy(nint source, long sourceByteOffset, nint destination, long destinationByteOffset, long bytes)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(sourceByteOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(destinationByteOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return;
        OpenCLNative.Check(_api.clEnqueueCopyBuffer(Queue, source, destination, (nuint)sourceByteOffset, (nuint)destinationByteOffset, (nuint)bytes, 0, null, null));
    }

    /// <summary>Queues filling <paramref name="bytes"/> bytes at <paramref name="byteOffset"/> with copies of a 4-byte pattern (e.g. a float's bits).</summary>
    public void Fill(nint mem, long byteOffset, long bytes, uint pattern)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return;
        if (byteOffset % 4 != 0 || bytes % 4 != 0) throw new ArgumentException("Offset and length must be multiples of the 4-byte pattern.");
        OpenCLNative.Check(_api.clEnqueueFillBuffer(Queue, mem, &pattern, 4, (nuint)byteOffset, (nuint)bytes, 0, null, null));
    }

    /// <summary>Waits for everything queued so far.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        OpenCLNative.Check(_api.clFinish(Queue));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Kernels

    /// <inheritdoc/>
    public void Unary(DeviceActivation activation, DeviceRegion x, DeviceRegion y, long n, ActivationParameters parameters)
    {
        if (n <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.Unary, activation, ProgramStorage.Of(x, y));
        bool vector = x.IsFloat && x.ElementOffset % 4 == 0 && y.ElementOffset % 4 == 0 && n >= 4;
        string kernel;
        long global;
        if (FlatLaunches)
        {
            kernel = vector ? ElementwiseKernels.UnaryFlat4 : ElementwiseKernels.UnaryFlat;
            global = RoundUp(vector ? Math.Max(n / 4, n % 4) : n, program.GroupSize);
        }
        else
        {
            kernel = vector ? ElementwiseKernels.UnaryVec4 : ElementwiseKernels.Unary;
            global = Math.Min(CeilDiv(vector ? n / 4 : n, program.GroupSize), _maxGroups) * program.GroupSize;
        }
        lock (_launchLock)
        {
            ThrowIfDisposed();
            new Launch(this, program.Kernel(kernel))
                .Arg(x.Handle).Arg(x.ElementOffset).Arg(y.Handle).Arg(y.ElementOffset).Arg(n)
                .Arg(parameters.Alpha).Arg(parameters.Beta).Arg(parameters.Threshold)
                .Run1D(global, program.GroupSize);
        }
    }

    /// <inheritdoc/>
    public void PRelu(DeviceRegion x, DeviceRegion alpha, int channels, DeviceRegion y, long n)
    {
        if (n <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        CompiledProgram program = GetProgram(KernelFamily.PRelu, null, ProgramStorage.Of(x, y));
        long groups = Math.Min(CeilDiv(n, program.GroupSize), FlatLaunches ? long.MaxValue : _maxGroups);
        lock (_launchLock)
        {
            ThrowIfDisposed();
            new Launch(this, program.Kernel(ElementwiseKernels.PRelu))
                .Arg(x.Handle).Arg(x.ElementOffset).Arg(alpha.Handle).Arg(alpha.ElementOffset).Arg(channels)
                .Arg(y.Handle).Arg(y.ElementOffset).Arg(n)
                .Run1D(groups * program.GroupSize, program.GroupSize);
        }
    }

    /// <inheritdoc/>
    public void UnaryBackward(DeviceActivation activation, bool fromOutput, DeviceRegion input, DeviceRegion dy, DeviceRegion dx, long n,
        ActivationParameters parameters)
    {
        if (n <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.UnaryBackward, activation, ProgramStorage.Of(input, dx));
        string kernel = (fromOutput, FlatLaunches) switch
        {
            (false, false) => BackwardKernels.Unary,
            (false, true) => BackwardKernels.UnaryFlat,
            (true, false) => BackwardKernels.UnaryFromOutput,
            (true, true) => BackwardKernels.UnaryFromOutputFlat,
        };
        long groups = CeilDiv(n, program.GroupSize);
        if (!FlatLaunches) groups = Math.Min(groups, _maxGroups);
        lock (_launchLock)
        {
            ThrowIfDisposed();
            new Launch(this, program.Kernel(kernel))
                .Arg(input.Handle).Arg(input.ElementOffset).Arg(dy.Handle).Arg(dy.ElementOffset).Arg(dx.Handle).Arg(dx.ElementOffset).Arg(n)
                .Arg(parameters.Alpha).Arg(parameters.Beta).Arg(parameters.Threshold)
                .Run1D(groups * program.GroupSize, program.GroupSize);
        }
    }

    /// <inheritdoc/>
    public void PReluBackward(DeviceRegion x, DeviceRegion alpha, DeviceRegion dy, DeviceRegion dx, DeviceRegion dAlpha, int channels, long n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        CompiledProgram program = GetProgram(KernelFamily.PReluBackward, null, ProgramStorage.Of(x, dx));
        long groups = Math.Min(CeilDiv(Math.Max(n, 1), program.GroupSize), FlatLaunches ? long.MaxValue : _maxGroups);
        lock (_launchLock)
        {
            ThrowIfDisposed();
            // dAlpha first: it reads x and dy, which dx may overwrite (the queue is in order).
            new Launch(this, program.Kernel(BackwardKernels.PReluAlpha))
                .Arg(x.Handle).Arg(x.ElementOffset).Arg(dy.Handle).Arg(dy.ElementOffset).Arg(n / channels).Arg(channels)
                .Arg(dAlpha.Handle).Arg(dAlpha.ElementOffset)
                .Run1D(CeilDiv(channels, program.GroupSize) * program.GroupSize, program.GroupSize);
            if (n > 0)
                new Launch(this, program.Kernel(BackwardKernels.PRelu))
                    .Arg(x.Handle).Arg(x.ElementOffset).Arg(alpha.Handle).Arg(alpha.ElementOffset).Arg(channels)
                    .Arg(dy.Handle).Arg(dy.ElementOffset).Arg(dx.Handle).Arg(dx.ElementOffset).Arg(n)
                    .Run1D(groups * program.GroupSize, program.GroupSize);
        }
    }

    /// <summary>The gated unit with default (zero) activation parameters and no clamp.</summary>
    public void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d)
        => Glu(gateActivation, layout, gate, up, y, rows, d, default);

    /// <inheritdoc/>
    public void Glu(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion y, long rows, long d,
                    ActivationParameters parameters, float limit = 0f)
    {
        if (rows <= 0 || d <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.Glu, gateActivation, ProgramStorage.Of(gate, y));
        var rowsOf = GluRows.Of(layout, gate, up, rows, d);
        // float4 loads and stores when every row of all three starts on 16 bytes (cl_mem bases are aligned far beyond that).
        bool vector = !FlatLaunches && gate.IsFloat && rowsOf.Step == 1 && rowsOf.D >= 4 && rowsOf.Gate.ElementOffset % 4 == 0 && rowsOf.Up.ElementOffset % 4 == 0
            && y.ElementOffset % 4 == 0 && (rowsOf.Rows == 1 || (rowsOf.D % 4 == 0 && rowsOf.RowStride % 4 == 0));
        lock (_launchLock)
        {
            ThrowIfDisposed();
            var launch = new Launch(this, program.Kernel(FlatLaunches ? GluKernels.GluFlat : vector ? GluKernels.GluVec4 : GluKernels.Glu))
                .Arg(rowsOf.Gate.Handle).Arg(rowsOf.Gate.ElementOffset).Arg(rowsOf.Up.Handle).Arg(rowsOf.Up.ElementOffset)
                .Arg(rowsOf.RowStride).Arg(rowsOf.Step)
                .Arg(y.Handle).Arg(y.ElementOffset).Arg(rowsOf.Rows).Arg(rowsOf.D)
                .Arg(parameters.Alpha).Arg(parameters.Beta).Arg(parameters.Threshold).Arg(limit);
            RunRows(launch, program.GroupSize, rowsOf.Rows, vector ? rowsOf.D / 4 : rowsOf.D);
        }
    }

    /// <inheritdoc/>
    public void GluBackward(DeviceActivation gateActivation, GluLayout layout, DeviceRegion gate, DeviceRegion up, DeviceRegion dy,
        DeviceRegion dGate, DeviceRegion dUp, long rows, long d, ActivationParameters parameters, float limit)
    {
        if (rows <= 0 || d <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.GluBackward, gateActivation, ProgramStorage.Of(gate, dGate));
        var rowsOf = GluRows.Of(layout, gate, up, rows, d);
        var gradients = GluRows.Of(layout, dGate, dUp, rows, d);
        lock (_launchLock)
        {
            ThrowIfDisposed();
            var launch = new Launch(this, program.Kernel(FlatLaunches ? GluKernels.BackwardFlat : GluKernels.Backward))
                .Arg(rowsOf.Gate.Handle).Arg(rowsOf.Gate.ElementOffset).Arg(rowsOf.Up.Handle).Arg(rowsOf.Up.ElementOffset)
                .Arg(rowsOf.RowStride).Arg(rowsOf.Step).Arg(dy.Handle).Arg(dy.ElementOffset)
                .Arg(gradients.Gate.Handle).Arg(gradients.Gate.ElementOffset).Arg(gradients.Up.Handle).Arg(gradients.Up.ElementOffset)
                .Arg(rowsOf.Rows).Arg(rowsOf.D)
                .Arg(parameters.Alpha).Arg(parameters.Beta).Arg(parameters.Threshold).Arg(limit);
            RunRows(launch, program.GroupSize, rowsOf.Rows, rowsOf.D);
        }
    }

    /// <summary>Runs a 2-D GLU launch over rows of <paramref name="columns"/> items (a power-of-two slice of the group per row).</summary>
    void RunRows(Launch launch, int g, long rows, long columns)
    {
        int localX = (int)Math.Min((ulong)g, BitOperations.RoundUpToPowerOf2((ulong)columns));
        int localY = g / localX;
        long groupsX = CeilDiv(columns, localX), groupsY = CeilDiv(rows, localY);
        if (!FlatLaunches)
        {
            groupsX = Math.Min(groupsX, _maxGroups);
            groupsY = Math.Min(groupsY, Math.Max(1, _maxGroups / groupsX));
        }
        launch.Run2D(groupsX * localX, groupsY * localY, localX, localY);
    }

    /// <summary>Plain softmax (no scale, mask or safe rows).</summary>
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log)
        => Softmax(x, y, rows, cols, log, PlanSoftmax(rows, cols), DeviceSoftmaxInput.Plain);

    /// <inheritdoc/>
    public void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, in DeviceSoftmaxInput input)
        => Softmax(x, y, rows, cols, log, PlanSoftmax(rows, cols), input);

    /// <summary>The softmax shapes' chooser for this device (<see cref="SoftmaxPlanner"/>; register rows are CUDA's choice, not OpenCL's).</summary>
    internal SoftmaxPlanner SoftmaxPlanner => new(_groupSize, Info.ComputeUnits, Info.IsCpu ? 4 : 8, RegisterRows: false);

    /// <summary>The shape <see cref="Softmax(DeviceRegion, DeviceRegion, long, long, bool)"/> uses for [rows, cols] (and the
    /// backward and cross-entropy kernels, whose shapes are the streaming ones this planner gives).</summary>
    internal SoftmaxPlan PlanSoftmax(long rows, long cols) => SoftmaxPlanner.Plan(rows, cols);

    /// <summary>Plain softmax with an explicit <paramref name="plan"/> (tests force each shape with it).</summary>
    internal void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, SoftmaxPlan plan)
        => Softmax(x, y, rows, cols, log, plan, DeviceSoftmaxInput.Plain);

    /// <summary>Softmax with options and an explicit <paramref name="plan"/>.</summary>
    internal void Softmax(DeviceRegion x, DeviceRegion y, long rows, long cols, bool log, SoftmaxPlan plan, in DeviceSoftmaxInput input)
    {
        if (rows <= 0 || cols <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.Softmax, null, ProgramStorage.Of(x, y));
        int g = program.GroupSize;
        plan = Fit(plan, cols, g, streamingOnly: false);
        nint mask = input.MaskHandle(x.Handle);
        int flags = input.Flags(log);
        if (!plan.IsSplit)
        {
            lock (_launchLock)
            {
                ThrowIfDisposed();
                new Launch(this, program.Kernel(plan.Kernel))
                    .Arg(x.Handle).Arg(x.ElementOffset).Arg(y.Handle).Arg(y.ElementOffset).Arg(rows).Arg(cols).Arg(plan.Lanes)
                    .Arg(input.Scale).Arg(mask).Arg(input.Mask.ElementOffset).Arg(input.MaskStride).Arg(flags)
                    .Run1D(RowGroups(rows, plan, g) * g, g);
            }
            return;
        }
        lock (_launchLock)
        {
            ThrowIfDisposed();
            long pieces = rows * plan.Chunks;
            nint scratch = Scratch(pieces * 2 * sizeof(float));
            new Launch(this, program.Kernel(SoftmaxKernels.Partial))
                .Arg(x.Handle).Arg(x.ElementOffset).Arg(rows).Arg(cols).Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch)
                .Arg(input.Scale).Arg(mask).Arg(input.Mask.ElementOffset).Arg(input.MaskStride).Arg(flags)
                .Run1D(PieceGroups(pieces) * g, g);
            new Launch(this, program.Kernel(SoftmaxKernels.Finish))
                .Arg(x.Handle).Arg(x.ElementOffset).Arg(y.Handle).Arg(y.ElementOffset).Arg(rows).Arg(cols)
                .Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch)
                .Arg(input.Scale).Arg(mask).Arg(input.Mask.ElementOffset).Arg(input.MaskStride).Arg(flags)
                .Run1D(PieceGroups(pieces) * g, g);
        }
    }

    /// <inheritdoc/>
    public void SoftmaxBackward(DeviceRegion y, DeviceRegion dy, DeviceRegion dx, long rows, long cols, bool log)
        => SoftmaxBackward(y, dy, dx, rows, cols, log, PlanSoftmax(rows, cols));

    /// <summary>Softmax backward with an explicit streaming <paramref name="plan"/> (rows or split).</summary>
    internal void SoftmaxBackward(DeviceRegion y, DeviceRegion dy, DeviceRegion dx, long rows, long cols, bool log, SoftmaxPlan plan)
    {
        if (rows <= 0 || cols <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.SoftmaxGrad, null, ProgramStorage.Of(y, dx));
        int g = program.GroupSize;
        plan = Fit(plan, cols, g, streamingOnly: true);
        int logMode = log ? 1 : 0;
        lock (_launchLock)
        {
            ThrowIfDisposed();
            if (!plan.IsSplit)
            {
                new Launch(this, program.Kernel(SoftmaxGradKernels.BackwardRows))
                    .Arg(y.Handle).Arg(y.ElementOffset).Arg(dy.Handle).Arg(dy.ElementOffset).Arg(dx.Handle).Arg(dx.ElementOffset)
                    .Arg(rows).Arg(cols).Arg(plan.Lanes).Arg(logMode)
                    .Run1D(RowGroups(rows, plan, g) * g, g);
                return;
            }
            long pieces = rows * plan.Chunks;
            nint scratch = Scratch(pieces * sizeof(float));
            new Launch(this, program.Kernel(SoftmaxGradKernels.BackwardPartial))
                .Arg(y.Handle).Arg(y.ElementOffset).Arg(dy.Handle).Arg(dy.ElementOffset)
                .Arg(rows).Arg(cols).Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch).Arg(logMode)
                .Run1D(PieceGroups(pieces) * g, g);
            new Launch(this, program.Kernel(SoftmaxGradKernels.BackwardFinish))
                .Arg(y.Handle).Arg(y.ElementOffset).Arg(dy.Handle).Arg(dy.ElementOffset).Arg(dx.Handle).Arg(dx.ElementOffset)
                .Arg(rows).Arg(cols).Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch).Arg(logMode)
                .Run1D(PieceGroups(pieces) * g, g);
        }
    }

    /// <inheritdoc/>
    public void CrossEntropy(DeviceRegion logits, DeviceRegion targets, DeviceRegion losses, DeviceRegion? grad, long rows, long cols, CrossEntropyOptions options)
        => CrossEntropy(logits, targets, losses, grad, rows, cols, options, PlanSoftmax(rows, cols));

    /// <summary>Cross-entropy with an explicit streaming <paramref name="plan"/> (rows or split).</summary>
    internal void CrossEntropy(DeviceRegion logits, DeviceRegion targets, DeviceRegion losses, DeviceRegion? grad, long rows, long cols,
        CrossEntropyOptions options, SoftmaxPlan plan)
    {
        if (rows <= 0 || cols <= 0) return;
        CompiledProgram program = GetProgram(KernelFamily.SoftmaxGrad, null, ProgramStorage.Of(logits, grad ?? logits));
        int g = program.GroupSize;
        plan = Fit(plan, cols, g, streamingOnly: true);
        DeviceRegion gr = grad ?? logits;
        int hasGrad = grad is null ? 0 : 1;
        lock (_launchLock)
        {
            ThrowIfDisposed();
            if (!plan.IsSplit)
            {
                new Launch(this, program.Kernel(SoftmaxGradKernels.CrossEntropyRows))
                    .Arg(logits.Handle).Arg(logits.ElementOffset).Arg(targets.Handle).Arg(targets.ElementOffset)
                    .Arg(losses.Handle).Arg(losses.ElementOffset).Arg(gr.Handle).Arg(gr.ElementOffset)
                    .Arg(rows).Arg(cols).Arg(plan.Lanes).Arg(options.IgnoreIndex).Arg(options.LabelSmoothing).Arg(options.GradientScale).Arg(hasGrad)
                    .Run1D(RowGroups(rows, plan, g) * g, g);
                return;
            }
            long pieces = rows * plan.Chunks;
            nint scratch = Scratch(pieces * SoftmaxGradKernels.CrossEntropyScratch * sizeof(float));
            new Launch(this, program.Kernel(SoftmaxGradKernels.CrossEntropyPartial))
                .Arg(logits.Handle).Arg(logits.ElementOffset).Arg(targets.Handle).Arg(targets.ElementOffset)
                .Arg(rows).Arg(cols).Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch)
                .Run1D(PieceGroups(pieces) * g, g);
            new Launch(this, program.Kernel(SoftmaxGradKernels.CrossEntropyFinish))
                .Arg(logits.Handle).Arg(logits.ElementOffset).Arg(targets.Handle).Arg(targets.ElementOffset)
                .Arg(losses.Handle).Arg(losses.ElementOffset).Arg(gr.Handle).Arg(gr.ElementOffset)
                .Arg(rows).Arg(cols).Arg(plan.Chunks).Arg(plan.ChunkLength).Arg(scratch)
                .Arg(options.IgnoreIndex).Arg(options.LabelSmoothing).Arg(options.GradientScale).Arg(hasGrad)
                .Run1D(PieceGroups(pieces) * g, g);
        }
    }

    /// <summary>
    /// <paramref name="plan"/> for a program built with groups of <paramref name="g"/> (it may have been built smaller than
    /// the planner assumed), validated; <paramref name="streamingOnly"/>: the backward and cross-entropy kernels, which
    /// have the rows and split shapes only.
    /// </summary>
    static SoftmaxPlan Fit(SoftmaxPlan plan, long cols, int g, bool streamingOnly)
    {
        if (plan.Shape == SoftmaxShape.Rows) plan = SoftmaxPlan.Rows(Math.Min(plan.Lanes, g));
        if (streamingOnly && plan.Shape == SoftmaxShape.Registers)
            throw new ArgumentException($"The softmax plan {plan} has no backward or cross-entropy kernel; use rows or split.", nameof(plan));
        plan.Validate(cols, g, cudaBlocks: false);
        return plan;
    }

    /// <summary>Groups of a rows or registers launch: g / lanes rows per group, at most the device's group cap.</summary>
    long RowGroups(long rows, SoftmaxPlan plan, int g) => Math.Min(CeilDiv(rows, g / plan.Lanes), _maxGroups);

    /// <summary>Groups of a split launch: one per piece, up to the larger of the group cap and 1024.</summary>
    long PieceGroups(long pieces) => Math.Min(pieces, Math.Max(_maxGroups, 1024));

    /// <summary>The device scratch buffer, grown to at least <paramref name="bytes"/>; call under the launch lock.
    /// Replacing it is safe while queued kernels still use the old one: OpenCL frees it after they finish.</summary>
    nint Scratch(long bytes)
    {
        if (_scratch is null || _scratch.ByteLength < bytes)
        {
            _scratch?.Dispose();
            _scratch = null;
            _scratch = Allocate(Math.Max(bytes, 4096));
        }
        return _scratch.Handle;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Programs

    readonly record struct ProgramKey(KernelFamily Family, string? ActivationName, string? ActivationBody, bool CpuShaped, ProgramStorage Storage);

    /// <summary>A built program, its kernels (created on first use) and the group size it was compiled for.</summary>
    sealed class CompiledProgram(OpenCLDevice device, OpenCLProgramHandle program, int groupSize) : IDisposable
    {
        readonly ConcurrentDictionary<string, OpenCLKernelHandle> _kernels = new();
        public OpenCLProgramHandle Program { get; } = program;
        public int GroupSize { get; } = groupSize;

        public nint Kernel(string name) => _kernels.GetOrAdd(name, static (n, self) => self.CreateKernel(n), this).Value;

        OpenCLKernelHandle CreateKernel(string name)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(name + "\0");
            int status;
            fixed (byte* p = utf8)
            {
                nint kernel = device._api.clCreateKernel(Program.Value, p, &status);
                if (status != 0 || kernel == 0) throw OpenCLException.ForCall($"clCreateKernel(\"{name}\")", status);
                return new OpenCLKernelHandle(device._api, kernel);
            }
        }

        /// <summary>The smallest CL_KERNEL_WORK_GROUP_SIZE among <paramref name="names"/>.</summary>
        public long MaxGroupSize(IEnumerable<string> names)
        {
            long min = long.MaxValue;
            foreach (string name in names)
            {
                nuint size;
                OpenCLNative.Check(device._api.clGetKernelWorkGroupInfo(Kernel(name), device.Info.Device,
                    OpenCLNative.CL_KERNEL_WORK_GROUP_SIZE, (nuint)sizeof(nuint), &size, null));
                min = Math.Min(min, (long)size);
            }
            return min;
        }

        public void Dispose()
        {
            foreach (OpenCLKernelHandle kernel in _kernels.Values) kernel.Dispose();
            _kernels.Clear();
            Program.Dispose();
        }
    }

    CompiledProgram GetProgram(KernelFamily family, DeviceActivation? activation, ProgramStorage storage = default)
    {
        ThrowIfDisposed();
        var key = new ProgramKey(family, activation?.Name, activation?.Body, CpuShapedKernels, storage);
        Lazy<CompiledProgram> lazy = _programs.GetOrAdd(key, k => new Lazy<CompiledProgram>(
            () => BuildForFamily(k, activation), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _programs.TryRemove(new KeyValuePair<ProgramKey, Lazy<CompiledProgram>>(key, lazy));
            throw;
        }
    }

    CompiledProgram BuildForFamily(ProgramKey key, DeviceActivation? activation)
    {
        string label = key.Family.Label(activation, key.Storage);
        int groupSize = _groupSize;
        while (true)
        {
            CompiledProgram program = Build(key.Family.Compose(groupSize, activation, key.CpuShaped, key.Storage), label, groupSize);
            long allowed = program.MaxGroupSize(key.Family.Kernels);
            if (allowed >= groupSize || groupSize == 1) return program;
            // A kernel cannot run with this many work-items here (registers, local memory): rebuild smaller.
            program.Dispose();
            groupSize = (int)BitOperations.RoundUpToPowerOf2((ulong)allowed + 1) / 2;
        }
    }

    /// <summary>Compiles <paramref name="source"/> (a complete program) for this device.</summary>
    /// <exception cref="OpenCLException">The build failed; the message carries the full compiler log.</exception>
    CompiledProgram Build(string source, string label, int groupSize)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(source);
        int status;
        nint program;
        fixed (byte* p = utf8)
        {
            byte* strings = p;
            nuint length = (nuint)utf8.Length;
            program = OpenCLNative.Checked(_api.clCreateProgramWithSource(Context, 1, &strings, &length, &status), status);
        }
        var handle = new OpenCLProgramHandle(_api, program);
        nint device = Info.Device;
        status = _api.clBuildProgram(program, 1, &device, null, 0, null);
        if (status != 0)
        {
            string log = _api.BuildLog(program, device);
            handle.Dispose();
            throw new OpenCLException(
                $"clBuildProgram of '{label}' for {Info.Name} failed: {OpenCLNative.ErrorName(status)} ({status}). Compiler log:\n{log}",
                status);
        }
        return new CompiledProgram(this, handle, groupSize);
    }

    /// <summary>Compiles a whole program text and creates its kernels; for tests (a broken source must throw with the log).</summary>
    internal void CompileForTest(string source, params string[] kernelNames)
    {
        using CompiledProgram program = Build(source, "test", _groupSize);
        foreach (string name in kernelNames) _ = program.Kernel(name);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Launching

    /// <summary>Sets a kernel's arguments in order and enqueues it; use under the launch lock.</summary>
    ref struct Launch(OpenCLDevice device, nint kernel)
    {
        uint _index;

        public Launch Arg<T>(T value) where T : unmanaged
        {
            int status = device._api.clSetKernelArg(kernel, _index, (nuint)sizeof(T), &value);
            if (status != 0) throw OpenCLException.ForCall($"clSetKernelArg(kernel, {_index}, sizeof({typeof(T).Name}))", status);
            _index++;
            return this;
        }

        public readonly void Run1D(long global, long local)
        {
            nuint g = (nuint)global, l = (nuint)local;
            OpenCLNative.Check(device._api.clEnqueueNDRangeKernel(device.Queue, kernel, 1, null, &g, &l, 0, null, null));
        }

        public readonly void Run2D(long globalX, long globalY, long localX, long localY)
        {
            nuint* g = stackalloc nuint[2] { (nuint)globalX, (nuint)globalY };
            nuint* l = stackalloc nuint[2] { (nuint)localX, (nuint)localY };
            OpenCLNative.Check(device._api.clEnqueueNDRangeKernel(device.Queue, kernel, 2, null, g, l, 0, null, null));
        }
    }

    static long CeilDiv(long a, long b) => (a + b - 1) / b;

    static long RoundUp(long a, long multiple) => CeilDiv(Math.Max(a, 1), multiple) * multiple;

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>
    /// Waits for queued work, then releases the programs, kernels and scratch this object created, and the context and
    /// queue when it owns them (never a wrapped engine's).
    /// </summary>
    public void Dispose()
    {
        lock (_launchLock)
        {
            if (_disposed) return;
            _disposed = true;
            if (!_queue.IsInvalid) _ = _api.clFinish(_queue.Value);
            foreach (Lazy<CompiledProgram> program in _programs.Values)
            {
                if (program.IsValueCreated) program.Value.Dispose();
            }
            _programs.Clear();
            _scratch?.Dispose();
            _scratch = null;
            _queue.Dispose();
            _context.Dispose();
        }
    }
}
