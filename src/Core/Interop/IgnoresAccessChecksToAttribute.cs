// Route B (see README.md in this folder): Core compiles against publicized copies of Microsoft.ML.Core and
// Microsoft.ML.Data (tools/Publicizer), and at run time this attribute tells the CoreCLR to skip access checks from
// this assembly into the real ones. It is recognised by name by the runtime (undocumented but supported since
// .NET Core 1.0; not honoured by .NET Framework). Only src/Core/Interop may rely on it.

[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.DataView")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Lets this assembly access non-public members of the named assembly at run time (CoreCLR only).</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute : Attribute
    {
        /// <summary>Creates the attribute for the assembly with the given simple name.</summary>
        public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

        /// <summary>The simple name of the assembly whose access checks are skipped.</summary>
        public string AssemblyName { get; }
    }
}
