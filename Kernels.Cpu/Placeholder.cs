namespace GpuActivations.Reference;
/// <summary>Temporary.</summary>
public static class Placeholder { }
